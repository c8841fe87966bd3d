"""What real article bodies cost PostgreSQL's search: snippets and ranking.

Stores N articles whose bodies are the 91 real news texts of bench/data (in turn) in the empty
PostgreSQL database given, then reports, in this process:

- snippets: the time to make a page's 20 snippets, as db.search makes them (ts_headline over a
  window of each body, the whole body where the window shows no match) and over whole bodies
  (as before the windows), median of ten pages of matching articles per query, the two taking
  turns for --rounds rounds;
- ranking: microseconds per row to match and rank --rank-rows rows (the statement's shape of
  db.search: string_agg of ids and ts_rank_cd), with the search vector as the articles table
  stores it (a real body's is several kilobytes, kept out of line by TOAST), in a copy with
  STORAGE MAIN (kept in the row where it fits a page), and for as many more articles stored
  with the synthetic bodies of bench/site_speed.py (150 words of its vocabulary; their
  vectors, under a kilobyte, stay in the row).

    .venv/bin/python bench/pg_text_costs.py --database-url \\
        postgresql+psycopg://postgres@127.0.0.1:5432/EMPTY_DATABASE [--articles 2000] \\
        [--rounds 3] [--rank-rows 2000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import statistics
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from site_speed import WORDS  # noqa: E402  (bench/, the script's folder)

from db import search  # noqa: E402
from db.articles import ArticleData, upsert_article  # noqa: E402
from db.models import Article  # noqa: E402
from db.query import parse_query  # noqa: E402
from db.session import get_engine, session_scope  # noqa: E402
from webapp.cli import prepare_database  # noqa: E402

BODIES = ROOT / "bench" / "data" / "news-bodies.json.gz"
QUERIES = ("said", "people", "company", "study", "government", "police", "united states",
           "\"white house\"")
PAGE = 20


def fill(url: str, count: int) -> None:
    """COUNT articles with the real bodies in turn (ids 1 to COUNT), then COUNT with synthetic
    ones."""
    prepare_database(url)
    with gzip.open(BODIES, "rt", encoding="utf-8") as f:
        bodies = json.load(f)
    rng = random.Random(7)
    bodies = [bodies[i % len(bodies)] for i in range(count)] + [
        " ".join(rng.choices(WORDS, k=150)) for _ in range(count)]
    with session_scope(url) as s:
        if s.scalar(select(func.count()).select_from(Article)):
            sys.exit(f"{url} already holds articles: give an empty database")
        for i, body in enumerate(bodies):
            upsert_article(s, ArticleData(
                canonical_url=f"https://news.example/{i}", url=f"https://news.example/{i}",
                title=f"Story {i}", summary="A summary of the story.", body=body))
    with get_engine(url).connect() as c:
        c.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE articles")


def whole_body_snippets(session: sa.orm.Session, raw: str, ids: list[int]) -> int:
    """The page's snippets over whole bodies (db.search before its windows); how many."""
    query = parse_query(raw)
    options = (f"StartSel={search.MARK_START}, StopSel={search.MARK_END}, "
               "MaxWords=30, MinWords=12")
    rows = session.execute(select(Article.id, func.ts_headline(
        "english", Article.body, search._pg_tsquery(query.groups), options))  # noqa: SLF001
        .where(Article.id.in_(ids))).all()
    return sum(1 for _, snippet in rows if search.MARK_START in snippet)


def windowed_snippets(session: sa.orm.Session, raw: str, ids: list[int]) -> int:
    return len(search._pg_snippets(session, parse_query(raw), ids))  # noqa: SLF001


def page_times(session: sa.orm.Session, make, raw: str, pages: list[list[int]]) -> float:
    times = []
    for ids in pages:
        started = time.perf_counter()
        make(session, raw, ids)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def snippets(url: str, rounds: int) -> None:
    print(f"snippets of a page of {PAGE} matching articles, median of 10 pages, ms "
          "(whole bodies -> windows), rounds taking turns:")
    with session_scope(url) as s:
        for raw in QUERIES:
            ids = list(s.scalars(select(Article.id).where(search._pg_match(parse_query(raw)))  # noqa: SLF001
                                 .order_by(Article.id).limit(10 * PAGE)))
            pages = [ids[i:i + PAGE] for i in range(0, len(ids), PAGE)]
            if not pages:
                continue
            windowed_snippets(s, raw, pages[0])  # the statements prepared, the pages read
            whole_body_snippets(s, raw, pages[0])
            figures = [(page_times(s, whole_body_snippets, raw, pages),
                        page_times(s, windowed_snippets, raw, pages)) for _ in range(rounds)]
            print(f"  {raw:<12} " + ", ".join(f"{w:5.1f} -> {n:5.1f}" for w, n in figures))


def ranking(url: str, rows: int, articles: int, rounds: int) -> None:
    with get_engine(url).connect() as c:
        c = c.execution_options(isolation_level="AUTOCOMMIT")
        c.exec_driver_sql("DROP TABLE IF EXISTS bench_vectors_main")
        c.exec_driver_sql("CREATE TABLE bench_vectors_main (id integer PRIMARY KEY, "
                          "search_vector tsvector)")
        c.exec_driver_sql("ALTER TABLE bench_vectors_main ALTER COLUMN search_vector "
                          "SET STORAGE MAIN")
        c.exec_driver_sql("INSERT INTO bench_vectors_main SELECT id, search_vector FROM articles "
                          f"WHERE id <= {articles}")
        c.exec_driver_sql("VACUUM ANALYZE bench_vectors_main")
        try:
            pages = "count(DISTINCT (ctid::text::point)[0])"  # heap pages holding the rows
            sizes = c.exec_driver_sql(
                f"SELECT (SELECT avg(pg_column_size(search_vector))::int FROM articles "
                f"WHERE id <= {articles}), (SELECT {pages} FROM articles WHERE id <= {articles}),"
                f" (SELECT {pages} FROM bench_vectors_main)").one()
            print(f"ranking {rows:,} rows, us a row; a real body's search vector {sizes[0]:,} "
                  f"bytes on average; the {articles:,} real rows fill {sizes[1]:,} heap pages "
                  f"as stored (body and vector out of line), {sizes[2]:,} in the STORAGE MAIN "
                  "copy of ids and vectors:")
            for label, table, word, first in (
                    ("real, as stored", "articles", "said", 1),
                    ("real, MAIN", "bench_vectors_main", "said", 1),
                    ("synthetic", "articles", "remission", articles + 1)):
                statement = (
                    "SELECT string_agg(id::text || ':' || (-ts_rank_cd(search_vector, q))::text,"
                    f" ',') FROM {table}, websearch_to_tsquery('english', '{word}') q "
                    f"WHERE id BETWEEN {first} AND {first + rows - 1} AND search_vector @@ q")
                c.exec_driver_sql(statement)
                took = []
                for _ in range(rounds):
                    started = time.perf_counter()
                    c.exec_driver_sql(statement)
                    took.append((time.perf_counter() - started) / rows * 1e6)
                print(f"  {label:<16} " + ", ".join(f"{t:.1f}" for t in took))
        finally:
            c.exec_driver_sql("DROP TABLE bench_vectors_main")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True, help="an empty PostgreSQL database")
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rank-rows", type=int, default=2000)
    args = parser.parse_args()
    if not args.database_url.startswith("postgresql"):
        parser.error("--database-url must name a PostgreSQL database")
    started = time.perf_counter()
    fill(args.database_url, args.articles)
    print(f"{args.articles:,} articles with real news bodies and as many with synthetic ones "
          f"stored in {time.perf_counter() - started:.0f} s")
    snippets(args.database_url, args.rounds)
    ranking(args.database_url, min(args.rank_rows, args.articles), args.articles, args.rounds)


if __name__ == "__main__":
    main()
