"""Relevance: what is not about cancer immunotherapy is kept but filtered out of the site."""

import sqlalchemy as sa

from db.session import get_engine
from nlp.relevance import THRESHOLD, is_immunotherapy, relevance
from nlp.tagger import annotate_article
from tests.conftest import app_client, new_db_url, run_cli


def _score(title, body):
    return relevance(annotate_article(title, body).entities, len(title))


def test_title_and_lead_weigh_most():
    in_title = _score("Pembrolizumab extends survival in melanoma", "A trial report. " * 60)
    deep_in_body = _score("A trial report", "Nothing yet. " * 60 + "pembrolizumab in melanoma")
    assert in_title > deep_in_body
    assert in_title >= THRESHOLD > deep_in_body


def test_comparators_and_other_news_are_not_immunotherapy():
    assert is_immunotherapy("pembrolizumab") and is_immunotherapy("car-t-cell-therapy")
    assert not is_immunotherapy("chemotherapy") and not is_immunotherapy("radiotherapy")
    assert _score("Chemotherapy schedules compared", "Chemotherapy and radiotherapy.") < THRESHOLD
    assert _score("Football results", "The match ended in a draw.") == 0.0


def test_general_feeds_are_stored_but_filtered(sample_site, tmp_path):
    from crawler.sources import SourceConfig, write_sources
    from tests.conftest import FAST

    sources = tmp_path / "s.toml"
    write_sources(sources, [
        SourceConfig("Golem", "feed", f"{sample_site.url}/static/miniflux/encoding_ISO-8859-1.xml",
                     fetch_pages=False),
        SourceConfig("Wire", "feed", sample_site.feed_url("news"), fetch_pages=False),
    ])
    url = new_db_url(tmp_path, "f.db")
    assert run_cli("crawl", "--sources", str(sources), *FAST, db_url=url).returncode == 0
    with get_engine(url).connect() as c:
        by_source = dict(c.execute(sa.text(
            "SELECT s.name, sum(CASE WHEN a.filtered THEN 1 ELSE 0 END) FROM articles a "
            "JOIN sources s ON s.id = a.source_id GROUP BY s.name")).all())
    assert by_source == {"Golem": 40, "Wire": 0}  # all tech news filtered, no Wire story

    listing = run_cli("sources", "--filtered", db_url=url)
    lines = listing.stdout.splitlines()
    assert len(lines) == 40 and all("\tGolem\t" in line for line in lines)

    client = app_client(url)
    html = client.get("/search?q=Fujitsu").get_data(as_text=True)
    assert "0 articles" in html  # kept in the database, never listed


def test_on_topic_news_is_never_filtered(crawled_db):
    with get_engine(crawled_db).connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM articles WHERE filtered")).scalar() == 0
