"""End-to-end crawl rate: fetch, extract, dedupe, tag and store N article pages served from
127.0.0.1, through the real `immunofeed crawl`.

    .venv/bin/python bench/crawl_throughput.py [--articles 2000] [--feeds 20]
        [--workers 3 --page-delay 0.5] [--database-url URL]

--workers N starts N crawl processes sharing one crawl through Redis (IMMUNOFEED_REDIS_URL, by
default database 11 of the local server, emptied first). --page-delay makes the site take that
long to answer each article page, as a distant server does: then one crawler, at its polite
concurrency (-s CONCURRENT_REQUESTS_PER_DOMAIN in BENCH_CRAWL_ARGS), waits on the network
rather than on its CPU, which is where more crawlers help.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._site import serve  # noqa: E402
from crawler.sources import SourceConfig, write_sources  # noqa: E402

IMMUNOFEED = str(Path(sys.executable).parent / "immunofeed")
# a local site needs no politeness delay; concurrency as a deployment would set it
FAST = ["-s", "DOWNLOAD_DELAY=0", "-s", "AUTOTHROTTLE_ENABLED=false",
        "-s", "CONCURRENT_REQUESTS=32", "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=32",
        *os.environ.get("BENCH_CRAWL_ARGS", "").split()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--feeds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--page-delay", type=float, default=0.0)
    parser.add_argument("--database-url", help="an empty database (default: SQLite, temporary)")
    args = parser.parse_args()
    site, feed_urls = serve(args.articles, args.feeds)
    site.page_delay = args.page_delay
    with tempfile.TemporaryDirectory() as tmp:
        sources = Path(tmp) / "sources.toml"
        write_sources(sources, [SourceConfig(f"bench {i}", "feed", url)
                                for i, url in enumerate(feed_urls)])
        env = {k: v for k, v in os.environ.items() if k != "IMMUNOFEED_REDIS_URL"}
        env["IMMUNOFEED_DATABASE_URL"] = args.database_url or f"sqlite:///{tmp}/bench.db"
        if args.workers > 1:
            import redis

            env["IMMUNOFEED_REDIS_URL"] = os.environ.get("IMMUNOFEED_REDIS_URL",
                                                         "redis://127.0.0.1:6379/11")
            redis.Redis.from_url(env["IMMUNOFEED_REDIS_URL"]).flushdb()
        subprocess.run([IMMUNOFEED, "init-db"], env=env, check=True, capture_output=True)
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        crawlers = [subprocess.Popen([IMMUNOFEED, "crawl", "--sources", str(sources), *FAST],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True) for _ in range(args.workers)]
        results = [(c.communicate(), c.returncode) for c in crawlers]
        elapsed = time.perf_counter() - started
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        crawler_cpu = (cpu_after.ru_utime - cpu_before.ru_utime
                       + cpu_after.ru_stime - cpu_before.ru_stime)
    site.stop()
    for (out, err), code in results:
        if code != 0:
            sys.exit(err[-2000:])
        print(out.strip())
    pages = sum(1 for _, path, _ in site.requests if "/articles/" in path)
    print(f"{args.workers} crawler(s), {args.page_delay:.2f} s per page: {args.articles} articles "
          f"({pages} page fetches) in {elapsed:.1f} s: {args.articles / elapsed:.1f} articles/s "
          f"(process start and model load included); the crawlers used {crawler_cpu:.1f} s of "
          "CPU")


if __name__ == "__main__":
    main()
