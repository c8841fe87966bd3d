"""Upkeep that keeps searches fast as articles arrive: `immunofeed db optimize`, which
`immunofeed run` schedules each night.

SQLite: every transaction that adds articles writes its part of the full-text index as a new
segment, and FTS5 merges them only in steps (four of a size make one bigger), so a database fed
by crawls keeps about ten. A search looks up each article of its page (its snippet) in every
segment: at 100,000 articles in ten segments a lookup cost 17 microseconds, in one 5. FTS5's
'optimize' merges them all into one (half a second at 100,000 articles; the database stays
readable meanwhile, writers wait for it).

PostgreSQL: a GIN index gathers new entries in a pending list that every search reads through
until autovacuum (or a full list) merges it; gin_clean_pending_list merges it now. The planner's
statistics are taken again too.
"""

from __future__ import annotations

import time

import sqlalchemy as sa

from db.copy import analyze
from db.session import get_engine

GIN_INDEXES = ("ix_articles_search_vector",)


def full_text_segments(connection: sa.Connection) -> int:
    """How many segments SQLite's full-text index is in."""
    return int(connection.exec_driver_sql(
        "SELECT count(DISTINCT segid) FROM article_fts_idx").scalar() or 0)


def optimize(url: str) -> str:
    """Merge the full-text index of the database at URL (see the module's docstring); one line
    saying what was done."""
    engine = get_engine(url)
    started = time.perf_counter()
    if engine.dialect.name == "sqlite":
        with engine.begin() as connection:
            before = full_text_segments(connection)
            connection.exec_driver_sql("INSERT INTO article_fts(article_fts) VALUES ('optimize')")
            after = full_text_segments(connection)
        return (f"full-text index merged: {before} segments -> {after} "
                f"({time.perf_counter() - started:.1f} s)")
    with engine.begin() as connection:
        pages = sum(connection.scalar(sa.text("SELECT gin_clean_pending_list(CAST(:index AS "
                                              "regclass))"), {"index": index}) or 0
                    for index in GIN_INDEXES)
    analyze(url)
    return (f"full-text index merged: {pages} pending pages; statistics taken again "
            f"({time.perf_counter() - started:.1f} s)")
