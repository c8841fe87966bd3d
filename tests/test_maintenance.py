"""`immunofeed db optimize` and the night's run of it that `immunofeed run` schedules."""

from __future__ import annotations

from datetime import UTC, datetime

from db.articles import ArticleData, upsert_article
from db.maintenance import full_text_segments
from db.query import parse_query
from db.search import search_articles
from db.session import get_engine, session_scope
from tests.conftest import run_cli

WORDS = "remission relapse survival toxicity infusion cohort biopsy response".split()


def _add(url: str, first: int, count: int) -> None:
    """COUNT articles, each stored in a transaction of its own (as crawls store them)."""
    for n in range(first, first + count):
        with session_scope(url) as s:
            upsert_article(s, ArticleData(
                canonical_url=f"https://news.example/{n}", url=f"https://news.example/{n}",
                title=f"{WORDS[n % 8]} {WORDS[n * 3 % 8]} with pembrolizumab",
                body=" ".join(WORDS[(n + i) % 8] for i in range(n % 5 + 3)) + " melanoma",
                published_at=datetime(2026, 10, n % 28 + 1, tzinfo=UTC)))


def _pages(url: str) -> list[tuple[int, list[int], list[str | None]]]:
    with session_scope(url) as s:
        pages = [search_articles(s, parse_query(q), slugs, per_page=50)
                 for q, slugs in (("remission", []), ("relapse OR cohort", []),
                                  ("surviv* -toxicity", []))]
        return [(p.total, [h.article.id for h in p.hits], [h.snippet for h in p.hits])
                for p in pages]


def test_optimize_merges_the_full_text_index_and_searches_find_the_same(db_url):
    _add(db_url, 1, 40)
    sqlite = get_engine(db_url).dialect.name == "sqlite"
    if sqlite:
        with get_engine(db_url).connect() as c:
            assert full_text_segments(c) > 1  # a transaction each: FTS5 merges only in steps
    before = _pages(db_url)
    assert all(total for total, _, _ in before)
    done = run_cli("db", "optimize", db_url=db_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("full-text index merged: ") and done.stdout.count("\n") == 1
    if sqlite:
        with get_engine(db_url).connect() as c:
            assert full_text_segments(c) == 1
        assert " segments -> 1 " in done.stdout
    else:
        assert "statistics taken again" in done.stdout
    assert _pages(db_url) == before
    _add(db_url, 41, 3)  # the index takes new articles as before
    with session_scope(db_url) as s:
        assert search_articles(s, parse_query("remission")).total > before[0][0]


def test_optimize_says_in_one_line_when_the_database_cannot_be_reached():
    done = run_cli("db", "optimize",
                   db_url="postgresql+psycopg://postgres@127.0.0.1:9/nowhere?connect_timeout=3")
    assert done.returncode == 1
    assert done.stderr.startswith("Error: database postgresql+psycopg://")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_run_merges_the_index_each_night_on_the_machine_that_sends_the_digests(
        monkeypatch, sample_sources_file, db_url):
    """The jobs `immunofeed run` schedules: the night's optimize with the digests, none on a
    crawler machine; the job itself runs the command and logs its line."""
    import logging

    from webapp import scheduler

    started = []
    monkeypatch.setattr(scheduler, "_start", started.append)
    monkeypatch.setenv("IMMUNOFEED_DATABASE_URL", db_url)
    for digests in (True, False):
        scheduler.run_forever(db_url, str(sample_sources_file), digests=digests)
        jobs = {job.id: job for job in started.pop().get_jobs()}
        assert ("optimize" in jobs) == digests
        if digests:
            trigger = {f.name: str(f) for f in jobs["optimize"].trigger.fields}
            assert (trigger["hour"], trigger["minute"]) == ("3", "30")
    _add(db_url, 1, 12)
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    keep = Keep()
    level = scheduler.log.level
    scheduler.log.addHandler(keep)
    scheduler.log.setLevel(logging.INFO)
    try:
        scheduler.Runner(db_url, str(sample_sources_file)).optimize()
    finally:
        scheduler.log.removeHandler(keep)
        scheduler.log.setLevel(level)
    assert [r for r in records if r.startswith("optimize: full-text index merged: ")], records
    if get_engine(db_url).dialect.name == "sqlite":
        with get_engine(db_url).connect() as c:
            assert full_text_segments(c) == 1
