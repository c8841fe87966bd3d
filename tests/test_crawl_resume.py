"""A crawl killed at any moment (kill -9) and started again stores every article exactly once,
on SQLite and on PostgreSQL."""

import os
import signal
import subprocess
import time

import pytest

from crawler.samplesite import render
from tests.conftest import FAST, IMMUNOFEED, stored_titles


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_mid_crawl_then_rerun(backend, sample_site, sample_sources_file, tmp_path,
                                     request):
    url = (f"sqlite:///{tmp_path}/k.db" if backend == "sqlite"
           else request.getfixturevalue("pg_url"))  # a schema of its own on the real server
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMMUNOFEED_")}
    env["IMMUNOFEED_DATABASE_URL"] = url
    # one page at a time, each slow: the crawl takes about 14 s, so the kill lands mid-way
    command = [IMMUNOFEED, "crawl", "--sources", str(sample_sources_file), *FAST,
               "-s", "CONCURRENT_REQUESTS=1"]
    total = len(render.stories())
    sample_site.page_delay = 0.4
    try:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while (len(stored_titles(url)) < 5 and time.monotonic() < deadline
               and process.poll() is None):
            time.sleep(0.1)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        stored_at_kill = len(stored_titles(url))
        assert 5 <= stored_at_kill < total, "the kill should land mid-crawl"
    finally:
        sample_site.page_delay = 0.0

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{total - stored_at_kill} new" in rerun.stdout
    assert f"{stored_at_kill} already stored" in rerun.stdout
    assert sorted(stored_titles(url)) == sorted(s.title for s in render.stories())  # all, each once
