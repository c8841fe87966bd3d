"""Answers kept per state of the data (webapp/pagecache.py): a page asked for again is sent
without running its queries, and never outlives a change to the articles or concepts."""

import time
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from db.articles import ArticleData, upsert_article
from db.models import Article, Concept
from db.session import get_engine, session_scope
from tests.conftest import app_client, run_cli


class Statements:
    """The SQL statements a database runs while counting."""

    def __init__(self, url: str) -> None:
        self.engine = get_engine(url)
        self.seen: list[str] = []

    def _count(self, conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        self.seen.append(statement)

    def __enter__(self) -> "Statements":
        event.listen(self.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._count)


def add_article(url: str, title: str) -> None:
    with session_scope(url) as session:
        upsert_article(session, ArticleData(
            canonical_url=f"http://127.0.0.1/{title}", url=f"http://127.0.0.1/{title}",
            title=title, body=title + ".", summary=title + ".",
            mentions={"pembrolizumab": 1, "melanoma": 1}, published_at=datetime.now(UTC)))


PAGES = ["/", "/search?q=pembrolizumab&sort=date", "/therapy/pembrolizumab", "/map",
         "/feed.json?therapy=pembrolizumab", "/feed.atom", "/therapy/pembrolizumab/feed.json",
         "/api/v1/articles?q=melanoma", "/api/v1/concepts", "/api/v1/concepts/melanoma"]


@pytest.mark.parametrize("page", PAGES)
def test_a_page_asked_for_again_is_sent_without_its_queries(tagged_db, page):
    client = app_client(tagged_db)
    data_read = ("FROM articles", "article_concepts", "FROM concepts", "articles_fts")

    def reads_data(statements: Statements) -> bool:
        return any(word in statement for statement in statements.seen for word in data_read)

    with Statements(tagged_db) as working_out:
        first = client.get(page)
    assert first.status_code == 200 and first.headers["X-Cache"] == "miss"
    assert reads_data(working_out)
    with Statements(tagged_db) as statements:
        again = client.get(page)
    assert again.status_code == 200 and again.headers["X-Cache"] == "hit"
    assert again.get_data() == first.get_data()
    assert again.content_type == first.content_type
    # what is left is the index's look at the change log: no article, tag or concept is read
    assert not reads_data(statements)
    # the security headers are the app's, added again to the kept answer
    assert again.headers["Content-Security-Policy"] == first.headers["Content-Security-Policy"]


def test_a_new_article_is_on_every_page_at_once(tagged_db):
    client = app_client(tagged_db)
    for page in PAGES[:3]:
        assert b"Pembrolizumab fresh from the press" not in client.get(page).get_data()
        assert client.get(page).headers["X-Cache"] == "hit"
    add_article(tagged_db, "Pembrolizumab fresh from the press")
    for page in PAGES[:3]:
        answer = client.get(page)
        assert answer.headers["X-Cache"] == "miss"
        assert b"Pembrolizumab fresh from the press" in answer.get_data(), page


def test_a_renamed_concept_shows_at_once(tagged_db):
    client = app_client(tagged_db)
    assert b"Keytruda the Great" not in client.get("/therapy/pembrolizumab").get_data()
    with session_scope(tagged_db) as session:
        session.execute(sa.update(Concept).where(Concept.slug == "pembrolizumab")
                        .values(name="Keytruda the Great"))
    assert b"Keytruda the Great" in client.get("/therapy/pembrolizumab").get_data()


def test_text_edited_in_place_shows_once_the_answer_is_old_enough(tagged_db):
    """A title edited without a change the index follows (not dated, tagged or moved) is sent
    as it was for at most PAGE_CACHE_SECONDS (a minute unless configured)."""
    client = app_client(tagged_db, PAGE_CACHE_SECONDS=0.5)
    page = "/search?q=melanoma"
    assert b"Nivolumab in melanoma" in client.get(page).get_data()
    with session_scope(tagged_db) as session:
        session.execute(sa.update(Article).where(Article.title == "Nivolumab in melanoma")
                        .values(title="Nivolumab in melanoma, corrected"))
    time.sleep(0.6)
    answer = client.get(page)
    assert answer.headers["X-Cache"] == "miss"
    assert b"Nivolumab in melanoma, corrected" in answer.get_data()


def test_feeds_are_kept_per_host_and_answer_304_from_the_cache(tagged_db):
    client = app_client(tagged_db)
    one = client.get("/feed.json", base_url="http://one.example")
    two = client.get("/feed.json", base_url="http://two.example")
    assert two.headers["X-Cache"] == "miss"  # its links name its own host
    assert b"http://one.example/" in one.get_data() and b"one.example" not in two.get_data()
    kept = client.get("/feed.json", base_url="http://two.example")
    assert kept.headers["X-Cache"] == "hit" and kept.get_data() == two.get_data()
    again = client.get("/feed.json", base_url="http://two.example",
                       headers={"If-None-Match": kept.headers["ETag"]})
    assert again.status_code == 304 and again.get_data() == b""
    since = client.get("/feed.json", base_url="http://two.example",
                       headers={"If-Modified-Since": kept.headers["Last-Modified"]})
    assert since.status_code == 304


def test_errors_redirects_and_uncached_pages_are_worked_out_each_time(tagged_db):
    client = app_client(tagged_db)
    for page, status in [("/therapy/no-such-drug", 404), ("/search?page=0", 400),
                         ("/search?q=therapy:pembrolizumab", 302), ("/therapy/melanoma", 308)]:
        for _ in range(2):
            answer = client.get(page)
            assert answer.status_code == status, page
            assert "X-Cache" not in answer.headers or answer.headers["X-Cache"] == "miss"
    for page in ("/sources", "/articles/1"):  # source health and evidence change unlogged
        client.get(page)
        assert "X-Cache" not in client.get(page).headers


def test_a_size_of_zero_turns_it_off_and_a_bad_size_is_refused(tagged_db):
    client = app_client(tagged_db, PAGE_CACHE_MB="0")
    for _ in range(2):
        assert "X-Cache" not in client.get("/search?q=melanoma").headers
    failed = run_cli("serve", "--port", "1", db_url=tagged_db, settings={"PAGE_CACHE_MB": "lots"})
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    assert "IMMUNOFEED_PAGE_CACHE_MB must be a number of megabytes (0: off), not 'lots'" in (
        failed.stderr)


def test_a_small_cache_keeps_the_most_recent_answers(tagged_db):
    pages = [f"/search?q={word}&sort={sort}" for word in ("melanoma", "pembrolizumab")
             for sort in ("date", "relevance")]
    sizes = [len(app_client(tagged_db, PAGE_CACHE_MB="0").get(page).get_data()) + 512
             for page in pages]
    room = max(sizes) * 2 + 100  # the last two answers, not three
    assert room < sum(sorted(sizes)[:3])
    client = app_client(tagged_db, PAGE_CACHE_MB=room / 1024 / 1024)
    for page in pages:
        assert client.get(page).headers["X-Cache"] == "miss"
    assert client.get(pages[-1]).headers["X-Cache"] == "hit"
    assert client.get(pages[-2]).headers["X-Cache"] == "hit"
    assert client.get(pages[0]).headers["X-Cache"] == "miss"
