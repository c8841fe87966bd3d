"""`immunofeed db copy`: a whole database moved, SQLite to PostgreSQL (a real server) and
SQLite to SQLite, ids and search kept; and the refusals."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import select

from db.articles import ArticleData, upsert_article
from db.copy import row_counts
from db.models import Article, Subscriber
from db.query import parse_query
from db.search import search_articles
from db.session import get_engine, session_scope
from db.subscriptions import confirm_subscription, secret_key
from tests.conftest import run_cli, sqlite_url


def _with_subscriber(url: str) -> str:
    with session_scope(url) as session:
        confirm_subscription(session, "copy@example.org", ["melanoma"], "weekly")
        return secret_key(session)


def _check_copy(source: str, target: str, key: str) -> None:
    assert row_counts(target) == row_counts(source)
    with session_scope(target) as session:
        page = search_articles(session, parse_query("melanoma"), ["pembrolizumab"])
        assert {h.article.title for h in page.hits} == {
            "Pembrolizumab in melanoma", "Pembrolizumab in melanoma, years ago"}
        subscriber = session.scalar(select(Subscriber))
        assert (subscriber.email, subscriber.topics) == ("copy@example.org", ["melanoma"])
        assert secret_key(session) == key  # links already emailed keep working
        # new rows get fresh ids after the copied ones
        _, new_id = upsert_article(session, ArticleData(
            canonical_url="https://news.example/after-copy", url="https://news.example/after-copy",
            title="After the copy", body=".", mentions={"melanoma": 1}))
        assert new_id > max(session.scalars(select(Article.id).where(Article.id != new_id)))


def test_copy_sqlite_to_postgresql(tagged_db, pg_url):
    key = _with_subscriber(tagged_db)
    copied = run_cli("db", "copy", "--from", tagged_db, "--to", pg_url)
    assert copied.returncode == 0, copied.stderr
    assert copied.stdout.startswith("copied ") and "5 articles" in copied.stdout
    assert "copying" in copied.stderr  # the progress bar
    _check_copy(tagged_db, pg_url, key)
    with get_engine(pg_url).connect() as connection:  # the planner knows the tables' sizes
        assert connection.scalar(sa.text(
            "SELECT reltuples FROM pg_class WHERE oid = 'articles'::regclass")) >= 5

    again = run_cli("db", "copy", "--from", tagged_db, "--to", pg_url)
    assert again.returncode == 1 and "already holds data" in again.stderr


def test_copy_sqlite_to_sqlite_keeps_full_text_search(tagged_db, tmp_path: Path):
    key = _with_subscriber(tagged_db)
    target = sqlite_url(tmp_path / "copy.db")
    copied = run_cli("db", "copy", "--from", tagged_db, "--to", target)
    assert copied.returncode == 0, copied.stderr
    _check_copy(tagged_db, target, key)


def test_copy_refusals_are_one_line(tagged_db, tmp_path: Path):
    for args, words in [
        (("--from", sqlite_url(tmp_path / "missing.db"), "--to", sqlite_url(tmp_path / "t.db")),
         "no database file at"),
        (("--from", tagged_db, "--to", tagged_db), "the same database"),
        (("--from", tagged_db, "--to", "nonsense://x"), "not a database URL"),
    ]:
        failed = run_cli("db", "copy", *args)
        assert failed.returncode == 1, failed.stdout
        assert words in failed.stderr and "Traceback" not in failed.stderr
    assert not (tmp_path / "missing.db").exists()
