"""The feed spider on real captured feeds (tests/fixtures/feeds, see SOURCE.md): odd encodings
and malformed feeds are read right, a broken one is one clear error and the crawl goes on."""

import pytest
import sqlalchemy as sa

from crawler.sources import SourceConfig, write_sources
from db.session import get_engine
from tests.conftest import FAST, FIXTURES, new_db_url, run_cli

FEED_DIR = FIXTURES / "feeds"
FEEDS = sorted(str(p.relative_to(FEED_DIR)) for p in FEED_DIR.glob("*/*"))
INDEX = {
    row.split("\t")[0]: row.split("\t")
    for row in (FEED_DIR / "FEEDS_INDEX.tsv").read_text(encoding="utf-8").splitlines()[1:]
}

# (feed, articles stored, a title that must come through with its characters intact)
EXPECTED = [
    ("feedjira/AtyponRSSFeed.xml", 20, None),
    ("feedreader/AtomSpecialCharacters.xml", 1, None),
    ("feedreader/Rss091Stadtfeuerwehr.xml", 15, "Brandmeldeanlagenalarm"),
    ("feedreader/Rss20CityDog.xml", 10, "белорусов"),
    ("miniflux/encoding_ISO-8859-1.xml", 40, None),
    ("miniflux/encoding_WINDOWS-1251.xml", 50, "Цитата #17220"),
    ("miniflux/no_encoding_ISO-8859-1.xml", 9, "Caroline Eliacheff : « Dolto reste"),
    ("miniflux/rdf_UTF8.xml", 60, "Wettrüsten oder Waffelessen"),
    ("miniflux/urdu_UTF8.xml", 26, "امریکہ اور پاکستان"),
    ("rss-parser/encoding-gb2312.xml", 20, "全国共查办"),
    ("rss-parser/heise.atom", 15, "Apache Software Foundation bekommt ein neues Logo"),
    ("rss-parser/phys-org-daily-sci-tech-news.rss", 30, "Tibetan glacier ice"),
    ("rss-parser/rss-1.rss", 69, "A clue to a drug's neurotoxicity?"),
    ("rss-parser/unrecognized.rss", 0, None),
    ("rss-parser/uolNoticias.rss", 15, "Argentina com FMI"),
]


@pytest.fixture(scope="module")
def crawl(sample_site, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("real-feeds")
    sources = [SourceConfig(name, "feed", f"{sample_site.url}/static/{name}", fetch_pages=False)
               for name in FEEDS]
    write_sources(tmp / "sources.toml", sources)
    url = new_db_url(tmp, "feeds.db")
    result = run_cli("crawl", "--sources", str(tmp / "sources.toml"), *FAST, db_url=url)
    return url, result


def test_all_81_real_feeds_are_here():
    assert len(FEEDS) == 81 and set(FEEDS) == set(INDEX)


def test_every_feed_with_entries_is_ingested(crawl):
    """Each feed with entries gives articles; an empty feed is fine; a non-feed is an error."""
    url, result = crawl
    with get_engine(url).connect() as c:
        stored = dict(c.execute(sa.text(
            "SELECT s.name, count(a.id) FROM sources s LEFT JOIN articles a "
            "ON a.source_id = s.id GROUP BY s.name")).all())
        errors = dict(c.execute(sa.text("SELECT name, last_error FROM sources")).all())
    for feed in FEEDS:
        version, entries = INDEX[feed][2], int(INDEX[feed][6])
        if version == "?":  # feedparser found no feed at all
            assert stored[feed] == 0 and errors[feed], feed
        else:
            assert 0 < stored[feed] <= entries or stored[feed] == entries == 0, feed
            assert errors[feed] is None, feed


@pytest.mark.parametrize("feed,count,title", EXPECTED)
def test_odd_feed_is_read_with_its_encoding(crawl, feed, count, title):
    url, _ = crawl
    with get_engine(url).connect() as c:
        titles = [t for (t,) in c.execute(sa.text(
            "SELECT a.title FROM articles a JOIN sources s ON s.id = a.source_id "
            "WHERE s.name = :name"), {"name": feed})]
    assert len(titles) == count
    if title:
        assert any(title in t for t in titles), titles[:3]
    assert not any("\ufffd" in t for t in titles)  # no replacement characters


def test_broken_feed_is_one_clear_error_and_the_crawl_goes_on(crawl):
    url, result = crawl
    assert result.returncode == 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1
    assert "rss-parser/unrecognized.rss" in errors[0] and "not a readable feed" in errors[0]
    assert "Traceback" not in result.stderr
    assert f"crawled {len(FEEDS)} source(s)" in result.stdout
    assert "1 source(s) failed" in result.stdout
    with get_engine(url).connect() as c:
        (error,), = c.execute(sa.text(
            "SELECT last_error FROM sources WHERE name = 'rss-parser/unrecognized.rss'"))
        healthy = c.execute(sa.text(
            "SELECT count(*) FROM sources WHERE last_error IS NULL AND last_crawled_at IS NOT NULL"
        )).scalar()
    assert "not a readable feed" in error
    assert healthy == len(FEEDS) - 1
