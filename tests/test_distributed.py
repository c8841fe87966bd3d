"""Three crawler processes sharing one crawl through Redis (scrapy-redis): every page fetched
once, every article stored once, the work really split; a worker killed with -9 loses nothing
the next crawl does not fetch."""

import os
import signal
import subprocess
import time
from collections import Counter

import pytest
import redis
import sqlalchemy as sa

from crawler.samplesite import render
from db.session import get_engine
from tests.conftest import FAST, IMMUNOFEED, cli_env, new_db_url, stored_titles

# A Redis database of this test's own, emptied before each test.
REDIS_URL = os.environ.get("IMMUNOFEED_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


@pytest.fixture
def shared_redis():
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is required in CI: {exc}")
        pytest.skip(f"no Redis at {REDIS_URL}")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def _start_workers(n, sources_file, db_url, *extra):
    env = cli_env(db_url, REDIS_URL=REDIS_URL)
    return [subprocess.Popen([IMMUNOFEED, "crawl", "--sources", str(sources_file), "-v", *FAST,
                              "-s", f"CONCURRENT_REQUESTS={PER_WORKER}", *extra],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(n)]


PER_WORKER = 2  # requests each worker has in flight at most (CONCURRENT_REQUESTS)


def _article_requests(site, since) -> int:
    """Article pages asked for since SINCE (held ones included: a request is recorded when it
    arrives)."""
    return sum("/articles/" in path for _, path, _ in site.requests[since:])


def _summary(log: str) -> list[str]:
    """What a worker's log says of its part in the shared crawl (for a failure's message)."""
    return [line.strip()[-160:] for line in log.splitlines()
            if "shared crawl" in line or "request_count" in line or "item_scraped" in line
            or "finish_reason" in line or "elapsed_time" in line or "start_time" in line]


def _finish(processes, timeout=180):
    results = []
    for p in processes:
        out, err = p.communicate(timeout=timeout)
        results.append((p.returncode, out, err))
    return results


def _fetches(site, since):
    return Counter(path for _, path, _ in site.requests[since:] if path != "/robots.txt")


def test_three_crawlers_split_one_crawl(sample_site, sample_sources_file, tmp_path,
                                        shared_redis):
    db_url = new_db_url(tmp_path)
    subprocess.run([IMMUNOFEED, "init-db"], env=cli_env(db_url), check=True,
                   capture_output=True)
    since = len(sample_site.requests)
    sample_site.page_delay = 0.2
    # no article page is answered until the site holds as many as all three workers can have
    # in flight: then each is at work on some (a late starter on a busy machine otherwise
    # found the queue emptied by the other two)
    sample_site.pages_open.clear()
    try:
        # a page held that long must not time out and be asked for again
        workers = _start_workers(3, sample_sources_file, db_url, "-s", "DOWNLOAD_TIMEOUT=180")
        deadline = time.monotonic() + 120
        while (_article_requests(sample_site, since) < 3 * PER_WORKER
               and time.monotonic() < deadline):
            time.sleep(0.05)
        sample_site.pages_open.set()
        results = _finish(workers)
    finally:
        sample_site.pages_open.set()
        sample_site.page_delay = 0.0
    for code, _, err in results:
        assert code == 0, err
    stories = render.stories()
    fetched = _fetches(sample_site, since)
    feeds = {p: n for p, n in fetched.items() if p.startswith("/feeds/")}
    pages = {p: n for p, n in fetched.items() if p not in feeds}
    assert len(feeds) == len(render.FEEDS) and set(feeds.values()) == {1}  # each feed once
    assert set(pages) == {s.page_path for s in stories  # all but what robots.txt forbids
                          if not s.page_path.startswith("/members/")}
    assert set(pages.values()) == {1}  # each page once
    assert sorted(stored_titles(db_url)) == sorted(s.title for s in stories)  # each article once

    # the work was split: every process stored some of the articles, together all of them
    new_counts = [int(out.split(" new,")[0].rsplit(" ", 1)[-1]) for _, out, _ in results]
    assert sum(new_counts) == len(stories)
    assert all(n > 0 for n in new_counts), (new_counts, [_summary(err) for _, _, err in results])
    assert "joining a running crawl" in "".join(err for _, _, err in results)
    assert shared_redis.keys("immunofeed:crawl:*") == []  # the last one out cleared up


def test_a_killed_worker_loses_nothing_the_next_crawl_does_not_fetch(
        sample_site, sample_sources_file, tmp_path, shared_redis):
    db_url = new_db_url(tmp_path)
    subprocess.run([IMMUNOFEED, "init-db"], env=cli_env(db_url), check=True,
                   capture_output=True)
    sample_site.page_delay = 0.3
    try:
        workers = _start_workers(3, sample_sources_file, db_url)
        deadline = time.monotonic() + 60
        while len(stored_titles(db_url)) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        os.kill(workers[0].pid, signal.SIGKILL)
        workers[0].communicate(timeout=10)  # reaped, as its parent would (no zombie left)
        results = _finish(workers[1:])
    finally:
        sample_site.page_delay = 0.0
    for code, _, err in results:
        assert code == 0, err
    stored = len(stored_titles(db_url))
    total = len(render.stories())
    assert stored <= total
    assert shared_redis.keys("immunofeed:crawl:*") == []  # the dead worker counted as gone

    again = _finish(_start_workers(1, sample_sources_file, db_url))
    assert again[0][0] == 0, again[0][2]
    assert f"{total - stored} new" in again[0][1]
    assert sorted(stored_titles(db_url)) == sorted(s.title for s in render.stories())


def test_unreachable_redis_is_one_clear_error(tmp_path, sample_sources_file):
    db_url = new_db_url(tmp_path)
    result = subprocess.run(
        [IMMUNOFEED, "crawl", "--sources", str(sample_sources_file)], capture_output=True,
        text=True, env=cli_env(db_url, REDIS_URL="redis://127.0.0.1:1/0"), timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: cannot reach Redis at redis://127.0.0.1:1/0")
    assert "--alone" in result.stderr and "Traceback" not in result.stderr


def test_crawlers_starting_together_register_their_sources_in_turn(tmp_path):
    """Four crawler processes' start-up (the vocabulary, a row per source) at the same moment
    on a new database: each one succeeds, and each source has one row. On PostgreSQL two
    inserting one new source together failed on its unique name, and that crawler stored
    nothing."""
    import threading

    from crawler.pipelines import prepare_store
    from crawler.sources import SourceConfig
    from webapp.cli import prepare_database

    db_url = new_db_url(tmp_path)
    prepare_database(db_url)
    sources = [SourceConfig(f"wire {i}", "feed", f"http://127.0.0.1:9/{i}.rss") for i in range(3)]
    start = threading.Barrier(4)
    outcomes: list[object] = []

    def start_up() -> None:
        start.wait()
        try:
            outcomes.append(prepare_store(db_url, sources)[0])
        except Exception as error:  # noqa: BLE001 - the test reports it
            outcomes.append(error)

    threads = [threading.Thread(target=start_up) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    assert len(outcomes) == 4 and all(o == outcomes[0] for o in outcomes)  # the same concept ids
    with get_engine(db_url).connect() as c:
        names = c.execute(sa.text("SELECT name FROM sources ORDER BY name")).scalars().all()
    assert names == [s.name for s in sources]
