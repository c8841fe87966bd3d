"""Site speed: N synthetic tagged articles in SQLite (or the PostgreSQL database given),
served by gunicorn with 2 workers on 127.0.0.1, read by a load generator on the same machine.
Reports the rate the articles were stored at, p50/p95 latency of selective searches (a common
word among the articles of a rarely used concept), searches within a common concept (the same
word among the articles of a much used concept or class: immunotherapy covers a fifth of them),
broad searches (over a tenth of the articles match) and concept pages, facets and all, and the
requests answered per second. A concept's use counts the articles tagged with it or with one
of its descendants, as a search filtered on it finds them.

    .venv/bin/python bench/site_speed.py [--articles 100000] [--requests 300] [--clients 4]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/EMPTY_DATABASE]
        [--reuse] [--warm-up 5] [--worker-timeout 30] [--page-cache-mb 0]
        [--complement-above SHARE] [--unmerged]

--reuse serves the articles an earlier run left in --database-url instead of storing new ones.
--page-cache-mb is IMMUNOFEED_PAGE_CACHE_MB for the server: 0 (the default here) times the work
of every request; the site's default (32) sends a page asked for again from the cache, and the
report then says how many were.
--complement-above sets db.search.COMPLEMENT_ABOVE in the server's workers: above 1, broad
searches never ask SQLite for the articles they do not match (the code before that shortcut).
The full-text index is merged before the requests, as `immunofeed run` does each night
(`immunofeed db optimize`); --unmerged leaves it as the storing left it (about ten segments).
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from db.articles import tag_terms  # noqa: E402
from db.concepts import ancestor_chains  # noqa: E402
from db.copy import analyze  # noqa: E402
from db.maintenance import optimize  # noqa: E402
from db.models import Article, ArticleConcept, Concept  # noqa: E402
from db.session import get_engine  # noqa: E402
from webapp.cli import prepare_database  # noqa: E402

BIN = Path(sys.executable).parent
WORDS = ("patients trial response survival tumour cells therapy dose cohort median months "
         "analysis safety biopsy infusion relapse remission toxicity endpoint phase arm "
         "investigators enrolled randomised placebo hazard ratio progression").split()
KINDS = ("news", "news", "news", "paper", "preprint", "trial")


def fill(url: str, count: int, seed: int = 7) -> list[tuple[str, str]]:
    """COUNT articles with up to 4 tags each (drawn so that some concepts are common and most
    rare, as in real news); returns the concepts' (page kind, slug), most used first."""
    prepare_database(url)
    engine = get_engine(url)
    with engine.connect() as c:
        concepts = c.execute(sa.select(Concept.id, Concept.slug, Concept.name,
                                       Concept.label)).all()
    rng = random.Random(seed)
    weights = [1 / (rank + 1) for rank in range(len(concepts))]  # Zipf-like popularity
    now = datetime.now(UTC)
    used: dict[tuple[str, str], int] = {}
    with engine.begin() as c:
        rows: list[dict[str, object]] = []
        links: list[dict[str, int]] = []
        for i in range(1, count + 1):
            tags = {concepts[j] for j in rng.choices(range(len(concepts)), weights, k=4)}
            names = " ".join(t.name for t in tags)
            rows.append({
                "id": i, "canonical_url": f"https://news.example/{i}",
                "url": f"https://news.example/{i}",
                "title": f"{' '.join(rng.choices(WORDS, k=6))} {names}",
                "summary": " ".join(rng.choices(WORDS, k=40)),
                "body": " ".join(rng.choices(WORDS, k=150)) + " " + names,
                "kind": rng.choice(KINDS), "published_at": now - timedelta(hours=i),
                # written with the tags, as the application does (triggers would otherwise
                # index each article's text again for each tag)
                "tag_terms": tag_terms(t.id for t in tags),
                "fetched_at": now, "extra": {}, "relevance": 1.0, "filtered": False})
            for t in tags:
                links.append({"article_id": i, "concept_id": t.id, "mentions": 1})
                key = (t.label.lower(), t.slug)
                used[key] = used.get(key, 0) + 1
            if len(rows) >= 5000:
                c.execute(sa.insert(Article), rows)
                c.execute(sa.insert(ArticleConcept), links)
                rows, links = [], []
        if rows:
            c.execute(sa.insert(Article), rows)
            c.execute(sa.insert(ArticleConcept), links)
    return sorted(used, key=lambda key: -used[key])


def concept_orders(url: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The stored concepts' (page kind, slug), most tagged first (what fill() returns), and
    ordered by the articles a search filtered on each finds (tagged with it or a descendant;
    an article with two such tags counted twice), most first: a class (immunotherapy) is
    seldom tagged itself but reaches every article of its members. One query for both."""
    with get_engine(url).connect() as c:
        rows = c.execute(sa.select(Concept.id, Concept.label, Concept.slug, Concept.parent_slug,
                                   sa.func.count(ArticleConcept.article_id))
                         .outerjoin(ArticleConcept, ArticleConcept.concept_id == Concept.id)
                         .group_by(Concept.id, Concept.label, Concept.slug,
                                   Concept.parent_slug)).all()
    tagged = {row.id: row[4] for row in rows}
    reach = dict.fromkeys(tagged, 0)
    for cid, chain in ancestor_chains((row.id, row.slug, row.parent_slug) for row in rows).items():
        for ancestor in chain:  # the concept itself, then its ancestors
            reach[ancestor] += tagged[cid]

    def ordered(counts: dict[int, int]) -> list[tuple[str, str]]:
        return [(row.label.lower(), row.slug)
                for row in sorted(rows, key=lambda row: -counts[row.id]) if counts[row.id]]

    return ordered(tagged), ordered(reach)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed_get(url: str) -> tuple[float, bool]:
    """Seconds to read URL (an http://host:port/path URL), and whether the answer came from the
    server's page cache. A request written on a socket and the answer read to the end: urllib
    spent 0.49 ms of CPU a request on the same two cores as the server, this client 0.35 ms,
    most of it the kernel's."""
    parts = urllib.parse.urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    request = (f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
               "Connection: close\r\n\r\n").encode()
    started = time.perf_counter()
    with socket.create_connection((parts.hostname, parts.port), timeout=900) as connection:
        connection.sendall(request)
        chunks = []
        while chunk := connection.recv(1 << 16):
            chunks.append(chunk)
    took = time.perf_counter() - started
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)[1] if " " in lines[0] else "?"
    headers = {name.strip().lower(): value.strip() for name, _, value in
               (line.partition(":") for line in lines[1:])}
    if status != "200":
        raise RuntimeError(f"{url}: {status}")
    if int(headers.get("content-length", len(body))) != len(body):
        raise RuntimeError(f"{url}: answer cut short")
    return took, headers.get("x-cache") == "hit"


def report(name: str, answers: list[tuple[float, bool]]) -> None:
    times = sorted(seconds for seconds, _ in answers)
    hits = sum(hit for _, hit in answers)
    p95 = times[max(0, round(len(times) * 0.95) - 1)]
    print(f"  {name:<34} p50 {statistics.median(times) * 1000:7.0f} ms   "
          f"p95 {p95 * 1000:7.0f} ms   max {times[-1] * 1000:7.0f} ms   ({len(times)} requests, "
          f"{len(set(urls_of[name]))} different, {hits} from the page cache)")


urls_of: dict[str, list[str]] = {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300, help="per kind of page")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--database-url", help="an empty database to fill (default: a "
                        "temporary SQLite file)")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--warm-up", type=int, default=5, help="requests of each kind first")
    parser.add_argument("--worker-timeout", type=int, default=30, help="gunicorn's, seconds")
    parser.add_argument("--page-cache-mb", default="0",
                        help="the server's IMMUNOFEED_PAGE_CACHE_MB (0: off)")
    parser.add_argument("--complement-above", type=float,
                        help="db.search.COMPLEMENT_ABOVE in the server's workers")
    parser.add_argument("--unmerged", action="store_true",
                        help="leave the full-text index unmerged (no `immunofeed db optimize`)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/site.db"
        if args.reuse:
            popular, reached = concept_orders(url)
            print(f"{get_engine(url).dialect.name}: the articles stored by an earlier run")
        else:
            started = time.perf_counter()
            popular = fill(url, args.articles)
            took = time.perf_counter() - started
            print(f"{get_engine(url).dialect.name}: {args.articles:,} synthetic articles with "
                  f"their tags stored in {took:.0f} s ({args.articles / took:,.0f} articles/s)")
            reached = concept_orders(url)[1]
        analyze(url)  # as autovacuum soon would (on PostgreSQL; it is off on some servers)
        if not args.unmerged:  # as the night's `immunofeed db optimize` does
            print(optimize(url))
        port = free_port()
        config = Path(tmp) / "gunicorn_conf.py"  # hooks run in each worker as it starts
        config.write_text("" if args.complement_above is None else (
            "def post_fork(server, worker):\n    import db.search\n"
            f"    db.search.COMPLEMENT_ABOVE = {args.complement_above!r}\n"))
        server = subprocess.Popen(
            [str(BIN / "gunicorn"), "--workers", "2", "--bind", f"127.0.0.1:{port}",
             "--log-level", "warning", "--timeout", str(args.worker_timeout),
             "--config", str(config), "webapp:create_app()"],
            env={**os.environ, "IMMUNOFEED_DATABASE_URL": url,
                 "IMMUNOFEED_PAGE_CACHE_MB": args.page_cache_mb})
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    timed_get(base + "/about")
                    break
                except OSError:
                    time.sleep(0.2)
            rng = random.Random(1)
            rare, common = reached[len(reached) // 2:], reached[:len(reached) // 2]
            selective = ["{}/search?q=remission&{}={}".format(base, *rng.choice(rare))
                         for _ in range(args.requests)]
            within = ["{}/search?q=remission&{}={}".format(base, *rng.choice(common))
                      for _ in range(args.requests)]
            broad = [f"{base}/search?q={rng.choice(WORDS)}" for _ in range(args.requests)]
            concept = ["{}/{}/{}".format(base, *rng.choice(popular[:40]))
                       for _ in range(args.requests)]
            with ThreadPoolExecutor(args.clients) as pool:
                for warm in (selective[:args.warm_up], within[:args.warm_up],
                             broad[:args.warm_up], concept[:args.warm_up]):
                    list(pool.map(timed_get, warm))
                print(f"gunicorn, 2 workers; {args.clients} clients on the same 2-core machine; "
                      f"page cache {args.page_cache_mb} MB")
                rates = []
                for name, urls in (("selective search (rare concept)", selective),
                                   ("search within a common concept", within),
                                   ("broad search (one common word)", broad),
                                   ("concept page", concept)):
                    urls_of[name] = urls
                    started = time.perf_counter()
                    answers = list(pool.map(timed_get, urls))
                    rates.append((name, len(urls) / (time.perf_counter() - started)))
                    report(name, answers)
            for name, rate in rates:
                print(f"  {name:<34} {rate:7.1f} requests/s")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
