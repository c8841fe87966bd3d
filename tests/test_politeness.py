"""Retry-After, backoff and source health, against the local sample site."""

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import sqlalchemy as sa

from crawler.sources import SourceConfig, write_sources
from db.session import get_engine
from db.sources import backoff
from tests.conftest import FAST, new_db_url, run_cli


def _source_row(url, name):
    with get_engine(url).connect() as c:
        return c.execute(sa.text("SELECT consecutive_failures, next_attempt_at, last_error, "
                                 "last_crawled_at FROM sources WHERE name = :n"),
                         {"n": name}).one()


def _one_feed(tmp_path, site, name="news"):
    path = tmp_path / "sources.toml"
    write_sources(path, [SourceConfig("wire", "feed", site.feed_url(name), fetch_pages=False)])
    return path


def test_short_retry_after_is_waited_out_within_the_crawl(sample_site, tmp_path):
    sources = _one_feed(tmp_path, sample_site, "research")
    path = urlsplit(sample_site.feed_url("research")).path
    sample_site.faults[path] = [(429, {"Retry-After": "1"}), (503, {"Retry-After": "1"})]
    url = new_db_url(tmp_path, "a.db")
    result = run_cli("crawl", "--sources", str(sources), *FAST, db_url=url)
    assert result.returncode == 0, result.stderr
    assert "10 new" in result.stdout
    assert sample_site.faults[path] == []  # both faults were met, then the real feed
    assert _source_row(url, "wire")[0] == 0


def test_long_retry_after_backs_the_source_off_until_then(sample_site, tmp_path):
    sources = _one_feed(tmp_path, sample_site, "briefs")
    path = urlsplit(sample_site.feed_url("briefs")).path
    sample_site.faults[path] = [(429, {"Retry-After": "7200"})]
    url = new_db_url(tmp_path, "b.db")
    started = datetime.now(UTC)
    first = run_cli("crawl", "--sources", str(sources), *FAST, db_url=url)
    assert first.returncode == 1  # the only source failed
    assert "ERROR feed: feed 'wire': HTTP 429" in first.stderr
    failures, next_attempt, error, _ = _source_row(url, "wire")
    assert failures == 1 and "HTTP 429" in error
    next_attempt = datetime.fromisoformat(str(next_attempt)).replace(tzinfo=UTC)
    assert next_attempt >= started + timedelta(seconds=7200)
    hits = sample_site.hits[path]
    second = run_cli("crawl", "--sources", str(sources), *FAST, db_url=url)
    assert second.returncode == 0 and "1 backing off" in second.stdout
    assert sample_site.hits[path] == hits  # not asked again before its time


def test_repeated_failures_mark_a_source_unhealthy(sample_site, tmp_path):
    sources = tmp_path / "s.toml"
    write_sources(sources, [SourceConfig("gone", "feed", f"{sample_site.url}/gone.xml"),
                            SourceConfig("wire", "feed", sample_site.feed_url("news"),
                                         fetch_pages=False)])
    url = new_db_url(tmp_path, "c.db")
    for _ in range(3):
        result = run_cli("crawl", "--sources", str(sources), *FAST, db_url=url)
        assert result.returncode == 0
        with get_engine(url).begin() as c:  # let it be tried again at once
            c.execute(sa.text("UPDATE sources SET next_attempt_at = NULL"))
    assert _source_row(url, "gone")[0] == 3
    listing = run_cli("sources", db_url=url)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    gone = next(line for line in lines if line.startswith("gone\t"))
    wire = next(line for line in lines if line.startswith("wire\t"))
    assert "\tunhealthy\t" in gone and "last success never" in gone and "0 article(s)" in gone
    assert "\tok\t" in wire and "14 article(s)" in wire
    assert any("last error: HTTP 404" in line for line in lines)
    # one success clears the record
    sources.write_text(sources.read_text().replace("/gone.xml", "/feeds/briefs.rss"))
    run_cli("crawl", "--sources", str(sources), *FAST, db_url=url)
    assert _source_row(url, "gone")[0] == 0


def test_backoff_doubles_and_is_capped():
    assert [backoff(n) for n in (1, 2, 3)] == [timedelta(minutes=15), timedelta(minutes=30),
                                              timedelta(minutes=60)]
    assert backoff(40) == timedelta(days=1)
