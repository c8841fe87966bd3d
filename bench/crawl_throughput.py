"""End-to-end crawl rate: fetch, extract, dedupe, tag and store N article pages served from
127.0.0.1, through the real `immunofeed crawl`.

    .venv/bin/python bench/crawl_throughput.py [--articles 2000] [--feeds 20]
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
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--feeds", type=int, default=20)
    args = parser.parse_args()
    site, feed_urls = serve(args.articles, args.feeds)
    with tempfile.TemporaryDirectory() as tmp:
        sources = Path(tmp) / "sources.toml"
        write_sources(sources, [SourceConfig(f"bench {i}", "feed", url)
                                for i, url in enumerate(feed_urls)])
        env = {**os.environ, "IMMUNOFEED_DATABASE_URL": f"sqlite:///{tmp}/bench.db"}
        subprocess.run([IMMUNOFEED, "init-db"], env=env, check=True, capture_output=True)
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        result = subprocess.run([IMMUNOFEED, "crawl", "--sources", str(sources), *FAST],
                                env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        crawler_cpu = (cpu_after.ru_utime - cpu_before.ru_utime
                       + cpu_after.ru_stime - cpu_before.ru_stime)
    site.stop()
    if result.returncode != 0:
        sys.exit(result.stderr[-2000:])
    print(result.stdout.strip())
    print(f"{args.articles} articles in {elapsed:.1f} s: {args.articles / elapsed:.0f} articles/s "
          f"(process start and model load included); the crawler used {crawler_cpu:.1f} s of CPU")


if __name__ == "__main__":
    main()
