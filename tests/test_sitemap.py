"""The sitemap spider: a sitemap index, a Google News sitemap and a plain one on the local
sample site; conditional and lastmod-aware re-crawls."""

from datetime import UTC, datetime

import sqlalchemy as sa

from crawler.samplesite import render
from crawler.sitemaps import SitemapError, parse_sitemap
from crawler.sources import SourceConfig, write_sources
from db.session import get_engine
from tests.conftest import FAST, new_db_url, run_cli


def test_parse_news_sitemap_and_index():
    news = parse_sitemap(render.sitemap("http://x", "news"))
    assert not news.is_index and len(news.entries) >= 20
    first = news.entries[0]
    assert first.title and first.language in ("en", "es") and first.lastmod.tzinfo
    index = parse_sitemap(render.sitemap_index("http://x"))
    assert index.is_index and [e.loc for e in index.entries] == [
        "http://x/sitemaps/news.xml", "http://x/sitemaps/research.xml"]
    for bad in (b"<html><body>moved</body></html>", b"", b"not xml at all"):
        try:
            parse_sitemap(bad)
        except SitemapError:
            continue
        raise AssertionError(f"{bad!r} was taken for a sitemap")


def test_sitemap_crawl_is_conditional_and_lastmod_aware(sample_site, tmp_path):
    sources = tmp_path / "s.toml"
    write_sources(sources, [SourceConfig("Wire sitemap", "sitemap",
                                         f"{sample_site.url}/sitemap_index.xml")])
    url = new_db_url(tmp_path, "s.db")
    expected = [s for s in render.stories()
                if s.feed in ("news", "briefs", "research") and s.page and not s.path]
    first = run_cli("crawl", "--sources", str(sources), *FAST, db_url=url)
    assert first.returncode == 0, first.stderr
    assert f"{len(expected)} new" in first.stdout
    with get_engine(url).connect() as c:
        titles = {t for (t,) in c.execute(sa.text("SELECT title FROM articles"))}
    assert titles == {s.title for s in expected}

    second = run_cli("crawl", "--sources", str(sources), *FAST, db_url=url)
    assert "1 not modified" in second.stdout and "0 new" in second.stdout

    # without validators, the index is read again, but child sitemaps unchanged since the last
    # success are skipped
    with get_engine(url).begin() as c:
        c.execute(sa.text("UPDATE sources SET etag = NULL, last_modified = NULL"))
    before = sample_site.hits["/sitemaps/news.xml"]
    third = run_cli("crawl", "--sources", str(sources), *FAST, db_url=url)
    assert third.returncode == 0 and "0 new, 0 updated" in third.stdout
    assert sample_site.hits["/sitemaps/news.xml"] == before

    # a success long ago: the children are read, stored pages are not fetched again unless
    # the sitemap says they changed after they were fetched
    with get_engine(url).begin() as c:
        c.execute(sa.text("UPDATE sources SET etag = NULL, last_crawled_at = :t"),
                  {"t": datetime(2020, 1, 1, tzinfo=UTC).replace(tzinfo=None)})
        c.execute(sa.text("UPDATE articles SET fetched_at = :t WHERE title = :title"),
                  {"t": datetime(2026, 9, 1), "title": expected[0].title})
    page_hits = sum(n for p, n in sample_site.hits.items() if p.startswith("/articles/"))
    fourth = run_cli("crawl", "--sources", str(sources), *FAST, db_url=url)
    assert f"{len(expected) - 1} already stored" in fourth.stdout
    assert sum(n for p, n in sample_site.hits.items() if p.startswith("/articles/")) == \
        page_hits + 1
