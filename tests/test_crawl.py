"""Real Scrapy crawls of the local sample site (nothing beyond 127.0.0.1)."""

from urllib.parse import urlsplit

import sqlalchemy as sa

from crawler.samplesite import render
from crawler.urls import canonical_url
from db.session import get_engine
from tests.conftest import FAST, new_db_url, run_cli, stored_json


def _rows(url, sql, **params):
    with get_engine(url).connect() as connection:
        return connection.execute(sa.text(sql), params).all()


def _story(slug):
    return next(s for s in render.stories() if s.slug == slug)


def test_crawl_stores_every_story_once_with_tags(crawled_db, sample_site):
    stories = render.stories()
    assert len(stories) >= 30
    assert _rows(crawled_db, "SELECT count(*) FROM articles")[0][0] == len(stories)
    urls = {u for (u,) in _rows(crawled_db, "SELECT canonical_url FROM articles")}
    assert urls == {f"{sample_site.url}{s.page_path}" for s in stories}  # no utm_ parameters
    tagged = _rows(crawled_db, """
        SELECT a.title FROM articles a JOIN article_concepts ac ON ac.article_id = a.id
        JOIN concepts c ON c.id = ac.concept_id WHERE c.slug = 'pembrolizumab'""")
    assert len(tagged) >= 4


def test_teaser_feed_entries_get_the_full_page_text(crawled_db):
    story = _story("cervical-cancer-pembrolizumab-chemoradiotherapy")
    (body, summary), = _rows(crawled_db, "SELECT body, summary FROM articles WHERE title = :t",
                             t=story.title)
    assert "Three-year overall survival was 82.6%" in body  # only on the page, not in the feed
    assert "Share this story" not in body and "Most read" not in body  # page chrome left out
    assert not body.startswith(story.title)
    assert summary and len(summary.split()) <= 60


def test_articles_carry_their_labels(crawled_db):
    story = _story("til-therapy-clears-metastatic-her2-negative-breast-cancer")
    (extra,), = _rows(crawled_db, "SELECT extra FROM articles WHERE title = :t", t=story.title)
    labels = stored_json(extra)["labels"]
    assert labels["phase"] == "2"
    assert {"metastatic", "refractory"} <= set(labels["settings"])
    assert "regulatory-approval" not in labels["types"]  # lifileucel's approval is background


def test_missing_page_falls_back_to_the_feed_text(crawled_db):
    story = _story("dendritic-cell-vaccine-glioblastoma")
    (body,), = _rows(crawled_db, "SELECT body FROM articles WHERE title = :t", t=story.title)
    assert body == story.teaser


def test_robots_txt_is_obeyed(crawled_db, sample_site):
    assert not [p for p in sample_site.hits if p.startswith("/members/")]
    story = _story("members-only-sipuleucel-t-analysis")
    (body,), = _rows(crawled_db, "SELECT body FROM articles WHERE title = :t", t=story.title)
    assert body == story.teaser


def test_spanish_articles_are_tagged_with_the_same_concepts(crawled_db):
    rows = _rows(crawled_db, """
        SELECT c.slug FROM articles a JOIN article_concepts ac ON ac.article_id = a.id
        JOIN concepts c ON c.id = ac.concept_id WHERE a.language = 'es'""")
    assert {"breast-cancer", "til-therapy", "non-small-cell-lung-cancer"} <= {r[0] for r in rows}


def test_recrawl_is_conditional_and_stores_no_duplicates(sample_sources_file, sample_site,
                                                        tmp_path):
    url = new_db_url(tmp_path, "twice.db")
    total = len(render.stories())
    first = run_cli("crawl", "--sources", str(sample_sources_file), *FAST, db_url=url)
    assert first.returncode == 0, first.stderr
    assert f"{total} new, 0 updated, 0 unchanged" in first.stdout

    feed_paths = [urlsplit(sample_site.feed_url(n)).path for n in render.FEEDS]
    before = sum(sample_site.conditional_hits[p] for p in feed_paths)
    page_hits = sum(n for p, n in sample_site.hits.items() if p.startswith("/articles/"))
    second = run_cli("crawl", "--sources", str(sample_sources_file), *FAST, db_url=url)
    assert second.returncode == 0, second.stderr
    feeds = len(render.FEEDS)
    assert "0 new, 0 updated, 0 unchanged article(s); 0 source(s) failed; " \
        f"{feeds} not modified" in second.stdout
    assert sum(sample_site.conditional_hits[p] for p in feed_paths) == before + feeds
    assert sum(n for p, n in sample_site.hits.items() if p.startswith("/articles/")) == page_hits

    # a server that ignores validators: the feeds are read again, but no page is re-fetched
    with get_engine(url).begin() as c:
        c.execute(sa.text("UPDATE sources SET etag = NULL, last_modified = NULL"))
    third = run_cli("crawl", "--sources", str(sample_sources_file), *FAST, db_url=url)
    assert f"0 new, 0 updated, 0 unchanged article(s); 0 source(s) failed; {total} already " \
        "stored" in third.stdout
    assert sum(n for p, n in sample_site.hits.items() if p.startswith("/articles/")) == page_hits
    assert _rows(url, "SELECT count(*) FROM articles")[0][0] == total


def test_canonical_url_rules():
    assert canonical_url("HTTPS://Example.ORG:443/a?utm_source=x&b=2&a=1#top") == \
        "https://example.org/a?a=1&b=2"
    assert canonical_url("http://example.org:8080") == "http://example.org:8080/"


def test_a_crawl_whose_store_cannot_start_says_so_and_fails(sample_sources_file, tmp_path):
    """Registering the sources fails (here a trigger refuses new ones): the spider never opens,
    and the crawl must not pass for one that found nothing."""
    url = new_db_url(tmp_path)
    assert run_cli("init-db", db_url=url).returncode == 0
    with get_engine(url).begin() as c:
        if c.dialect.name == "postgresql":
            c.execute(sa.text("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                              "$$ BEGIN RAISE EXCEPTION 'no new sources here'; END $$"))
            c.execute(sa.text("CREATE TRIGGER refuse BEFORE INSERT ON sources "
                              "FOR EACH ROW EXECUTE FUNCTION refuse()"))
        else:
            c.execute(sa.text("CREATE TRIGGER refuse BEFORE INSERT ON sources "
                              "BEGIN SELECT RAISE(ABORT, 'no new sources here'); END"))
    result = run_cli("crawl", "--sources", str(sample_sources_file), *FAST, db_url=url)
    assert result.returncode == 1
    assert "Error: the feed crawl could not start (its error is in the log above)" in result.stderr
    assert "no new sources here" in result.stderr
    assert "the feed crawl could not start" in result.stdout  # the report line says it too
    assert _rows(url, "SELECT count(*) FROM articles")[0][0] == 0
