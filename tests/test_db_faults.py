"""The database failing under the site and the crawler: a full disk answers a clear 503, never
a stack trace, never a success the database did not keep; a database restarted mid-crawl costs
the crawl a wait, not an article."""

import contextlib
import socket
import subprocess
import threading
import time

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from crawler.samplesite import render
from db.models import ConfirmationSend
from db.session import get_engine, session_scope
from db.subscriptions import secret_key
from tests.conftest import FAST, IMMUNOFEED, cli_env, sqlite_url, stored_titles
from tests.smtpsink import SmtpSink
from webapp.subscribe import limiter


@pytest.fixture
def full_disk_db(tmp_path):
    """A SQLite database that cannot grow by a single page: SQLite's own "database or disk is
    full" (SQLITE_FULL), the error a full disk gives, on the first write that needs room."""
    from webapp.cli import prepare_database

    url = sqlite_url(tmp_path / "full.db")
    prepare_database(url)
    with session_scope(url) as session:
        secret_key(session)  # made while there was room
    engine = get_engine(url)

    @event.listens_for(engine, "connect")
    def _no_room(dbapi_connection, _record):  # noqa: ANN001
        cursor = dbapi_connection.cursor()
        pages = cursor.execute("PRAGMA page_count").fetchone()[0]
        cursor.execute(f"PRAGMA max_page_count = {pages}")
        cursor.close()

    engine.dispose()  # connections from now on have no room
    yield url
    event.remove(engine, "connect", _no_room)


def test_a_full_disk_answers_503_and_keeps_reads_working(full_disk_db):
    from webapp import create_app

    with SmtpSink() as sink:
        app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False,
                          "DATABASE_URL": full_disk_db, "SMTP_URL": sink.url,
                          "BASE_URL": "http://localhost"})
        limiter.reset()
        client = app.test_client()
        assert client.get("/").status_code == 200
        assert client.get("/search?q=melanoma").status_code == 200

        # each new address needs room for its hashed confirmation count (each from a client of
        # its own, under the per-client rate limit)
        answers = (client.post("/api/v1/subscriptions",
                               json={"email": f"reader{i}@example.org", "topics": ["melanoma"]},
                               environ_base={"REMOTE_ADDR": f"10.0.{i // 250}.{i % 250}"})
                   for i in range(5000))
        api = next(r for r in answers if r.status_code != 202)
        assert api.status_code == 503
        assert api.get_json()["error"]["message"].startswith(
            "The article database is not available right now")
        form = client.post("/subscribe", data={"email": "form.reader@example.org",
                                               "topic": "melanoma", "frequency": "daily"},
                           environ_base={"REMOTE_ADDR": "10.1.0.1"})
        assert form.status_code == 503 and "not available right now" in form.text
        for answer in (api, form):
            assert "Traceback" not in answer.text and "sqlite3" not in answer.text
            assert "full" not in answer.text  # the cause is logged, not shown
        assert form.headers["Content-Security-Policy"].startswith("default-src 'self'")

    # what the database holds is whole: every confirmation counted was also sent
    with get_engine(full_disk_db).connect() as c:
        counted = c.execute(sa.select(sa.func.count()).select_from(ConfirmationSend)).scalar()
    assert counted == len(sink.messages)


class FlakyProxy:
    """A TCP proxy on loopback in front of the PostgreSQL server that can be cut (every open
    connection dropped, new ones closed at once, as while a server restarts) and restored."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            if not self.up:
                client.close()
                continue
            server = socket.create_connection(self.upstream)
            with self._lock:
                self._open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up = False
        with self._lock:
            for s in self._open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._open = []

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


def test_a_crawl_rides_out_a_database_restart(sample_site, sample_sources_file, pg_url):
    from webapp.cli import prepare_database

    prepare_database(pg_url)
    direct = sa.engine.make_url(pg_url)
    proxy = FlakyProxy((direct.host, direct.port or 5432))
    through_proxy = direct.set(port=proxy.port).render_as_string(hide_password=False)
    sample_site.page_delay = 0.3  # one page at a time: about 10 s of crawling
    try:
        crawl = subprocess.Popen(
            [IMMUNOFEED, "crawl", "--sources", str(sample_sources_file), *FAST,
             "-s", "CONCURRENT_REQUESTS=1", "-s", "STORE_BATCH_ITEMS=1"],
            env=cli_env(through_proxy), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        deadline = time.monotonic() + 60
        while (len(stored_titles(pg_url)) < 3 and time.monotonic() < deadline
               and crawl.poll() is None):
            time.sleep(0.1)
        proxy.cut()  # the server goes away mid-crawl...
        stored_before = len(stored_titles(pg_url))
        time.sleep(4)
        assert crawl.poll() is None, "the crawl should wait for the database, not end"
        proxy.restore()  # ...and comes back
        out, err = crawl.communicate(timeout=120)
    finally:
        sample_site.page_delay = 0.0
        proxy.close()
    assert crawl.returncode == 0, err
    assert 3 <= stored_before < len(render.stories())
    assert "WARNING crawler.database: database unavailable while" in err
    assert "database back after" in err
    assert "Traceback" not in err
    # every one, each once
    assert sorted(stored_titles(pg_url)) == sorted(s.title for s in render.stories())
    assert f"{len(render.stories())} new" in out


def test_an_article_whose_commit_answer_was_lost_still_counts_as_new(db_url):
    """The connection drops after the server committed a batch but before the crawler heard
    so: the crawler writes the batch again and finds the articles already there. They were
    stored once and are reported as new, not as unchanged."""
    from scrapy.utils.test import get_crawler

    from crawler.items import ArticleItem
    from crawler.pipelines import StorePipeline
    from crawler.spiders.feeds import FeedSpider

    crawler = get_crawler(FeedSpider, {"IMMUNOFEED_DATABASE_URL": db_url})
    crawler.stats.open_spider()
    pipeline = StorePipeline.from_crawler(crawler)
    pipeline._prepare()
    pipeline._held = [ArticleItem(url=f"http://127.0.0.1/lost-{i}", title=f"Lost answer {i}",
                                  body="A body.", canonical_url=f"http://127.0.0.1/lost-{i}")
                      for i in range(3)]
    engine = get_engine(db_url)

    def answer_lost(connection):  # noqa: ANN001
        connection.connection.dbapi_connection.commit()  # the server commits...
        raise sa.exc.OperationalError(  # ...and the answer never arrives
            "COMMIT", {}, ConnectionError("server closed the connection unexpectedly"))

    event.listen(engine, "commit", answer_lost)
    try:
        with pytest.raises(sa.exc.OperationalError):
            pipeline._write_held()
    finally:
        event.remove(engine, "commit", answer_lost)
    assert len(pipeline._held) == 3  # held for the next attempt
    assert sorted(stored_titles(db_url)) == [f"Lost answer {i}" for i in range(3)]
    pipeline._write_held()
    assert pipeline._held == []
    stats = crawler.stats.get_stats()
    assert stats.get("immunofeed/articles_new") == 3
    assert "immunofeed/articles_unchanged" not in stats
    assert sorted(stored_titles(db_url)) == [f"Lost answer {i}" for i in range(3)]
