"""The database failing under the site: a full disk answers a clear 503, never a stack trace,
never a success the database did not keep."""

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from db.models import ConfirmationSend
from db.session import get_engine, session_scope
from db.subscriptions import secret_key
from tests.conftest import sqlite_url
from tests.smtpsink import SmtpSink


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
        app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False, "RATELIMIT_ENABLED": False,
                          "DATABASE_URL": full_disk_db, "SMTP_URL": sink.url,
                          "BASE_URL": "http://localhost"})
        client = app.test_client()
        assert client.get("/").status_code == 200
        assert client.get("/search?q=melanoma").status_code == 200

        # each new address needs room for its hashed confirmation count
        emails = (f"reader{i}@example.org" for i in range(5000))
        api = next(r for r in (client.post("/api/v1/subscriptions",
                                           json={"email": e, "topics": ["melanoma"]})
                               for e in emails) if r.status_code != 202)
        assert api.status_code == 503
        assert api.get_json()["error"]["message"].startswith(
            "The article database is not available right now")
        form = client.post("/subscribe", data={"email": "form.reader@example.org",
                                               "topic": "melanoma", "frequency": "daily"})
        assert form.status_code == 503 and "not available right now" in form.text
        for answer in (api, form):
            assert "Traceback" not in answer.text and "sqlite3" not in answer.text
            assert "full" not in answer.text  # the cause is logged, not shown
        assert form.headers["Content-Security-Policy"].startswith("default-src 'self'")

    # what the database holds is whole: every confirmation counted was also sent
    with get_engine(full_disk_db).connect() as c:
        counted = c.execute(sa.select(sa.func.count()).select_from(ConfirmationSend)).scalar()
    assert counted == len(sink.messages)
