"""Re-polling unchanged feeds: N feeds crawled once, then crawled again with every one answering
304 Not Modified. Times the second crawl through the real `immunofeed crawl`.

    .venv/bin/python bench/repoll_unchanged.py [--feeds 1000]
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
FAST = ["-s", "DOWNLOAD_DELAY=0", "-s", "AUTOTHROTTLE_ENABLED=false",
        "-s", "CONCURRENT_REQUESTS=64", "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=64"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--feeds", type=int, default=1000)
    args = parser.parse_args()
    site, feed_urls = serve(articles=args.feeds, feeds=args.feeds)  # one entry a feed
    with tempfile.TemporaryDirectory() as tmp:
        sources = Path(tmp) / "sources.toml"
        write_sources(sources, [SourceConfig(f"feed {i}", "feed", url, fetch_pages=False)
                                for i, url in enumerate(feed_urls)])
        env = {**os.environ, "IMMUNOFEED_DATABASE_URL": f"sqlite:///{tmp}/bench.db"}
        command = [IMMUNOFEED, "crawl", "--sources", str(sources), *FAST]
        first = subprocess.run(command, env=env, capture_output=True, text=True)
        if first.returncode != 0:
            sys.exit(first.stderr[-2000:])
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        second = subprocess.run(command, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        crawler_cpu = (cpu_after.ru_utime - cpu_before.ru_utime
                       + cpu_after.ru_stime - cpu_before.ru_stime)
    site.stop()
    print(second.stdout.strip())
    print(f"re-polled {args.feeds} unchanged feeds in {elapsed:.1f} s (process start and model "
          f"load included); the crawler used {crawler_cpu:.1f} s of CPU")


if __name__ == "__main__":
    main()
