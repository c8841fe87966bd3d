"""Concept pages (/therapy/<slug>, /cancer/<slug>, /target/<slug>) and their feeds, over a real
SQLite database filled with articles whose tags are known."""

import json
import re
from datetime import date, timedelta

import pytest

from db.concepts import articles_per_month, co_occurring, with_descendants
from db.session import session_scope
from tests.conftest import NOW, app_client
from tests.conftest import TAGGED_ARTICLES as ARTICLES


@pytest.fixture
def concept_client(tagged_db):
    return app_client(tagged_db)


def _titles(html):
    return re.findall(r'<li class="result">\s*<h2><a href="[^"]+">(.*?)</a>', html)


def test_counts_per_month_and_concepts_reported_together(tagged_db):
    today = NOW.date()
    with session_scope(tagged_db) as s:
        ids = with_descendants(s, "pembrolizumab")
        months = articles_per_month(s, ids, today=today)
        together = co_occurring(s, ids)
        pd1 = co_occurring(s, with_descendants(s, "pd-1-inhibitor"))
    assert len(months) == 24 and months[-1][0] == today.strftime("%Y-%m")
    expected: dict[str, int] = {}
    for _, days, mentions, filtered in ARTICLES:
        when = (NOW - timedelta(days=days)).strftime("%Y-%m")
        if "pembrolizumab" in mentions and not filtered:
            expected[when] = expected.get(when, 0) + 1
    assert {m: n for m, n in months if n} == {m: n for m, n in expected.items()
                                              if m >= months[0][0]}
    # the filtered article is not counted; the old one is, outside the chart's window
    assert [(c.slug, n) for c, n in together["CANCER"]] == [
        ("melanoma", 2), ("non-small-cell-lung-cancer", 1)]
    assert "THERAPY" not in together
    assert [(c.slug, n) for c, n in pd1["CANCER"]] == [
        ("melanoma", 3), ("non-small-cell-lung-cancer", 1)]
    assert [(c.slug, n) for c, n in pd1["TARGET"]] == [("pd-l1", 1)]


def test_months_roll_over_the_year():
    # no database needed for the calendar: an empty id set counts nothing
    from db.session import session_scope as scope

    with scope("sqlite://") as s:
        from db.models import Base

        Base.metadata.create_all(s.get_bind())
        months = articles_per_month(s, set(), months=3, today=date(2026, 1, 15))
    assert months == [("2025-11", 0), ("2025-12", 0), ("2026-01", 0)]


def test_therapy_page_shows_hierarchy_synonyms_chart_neighbours_and_latest(concept_client):
    response = concept_client.get("/therapy/pembrolizumab")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert re.search(r"<h1>pembrolizumab</h1>", html)
    crumbs = re.search(r'<nav class="crumbs"[^>]*>(.*?)</nav>', html, re.S).group(1)
    assert re.findall(r">([^<]+)</a>", crumbs) == [
        "immunotherapy", "immune checkpoint inhibitor", "PD-1 inhibitor"]
    assert "Keytruda" in html and "MK-3475" in html
    assert html.count("<rect ") == 24 and 'role="img"' in html
    together = re.findall(r'<li><a href="[^"]+">([^<]+)</a> <span class="count">(\d+)</span>',
                          html)
    assert together == [("melanoma", "2"), ("non-small cell lung cancer", "1")]
    assert _titles(html) == ["Pembrolizumab in NSCLC", "Pembrolizumab in melanoma",
                             "Pembrolizumab in melanoma, years ago"]
    assert '<link rel="alternate" type="application/feed+json"' in html
    assert 'href="/therapy/pembrolizumab/feed.json"' in html
    assert 'type="application/atom+xml"' in html
    assert 'href="/therapy/pembrolizumab/feed.atom"' in html


def test_class_page_includes_its_children(concept_client):
    html = concept_client.get("/therapy/pd-1-inhibitor").get_data(as_text=True)
    assert "Pembrolizumab in NSCLC" in html and "Nivolumab in melanoma" in html
    narrower = re.search(r'<h2 id="narrower">.*?</ul>', html, re.S).group(0)
    assert ">pembrolizumab</a>" in narrower and ">nivolumab</a>" in narrower
    assert "Off-topic" not in html


def test_wrong_kind_redirects_and_unknown_concept_is_a_friendly_404(concept_client):
    moved = concept_client.get("/cancer/pembrolizumab")
    assert moved.status_code == 308 and moved.headers["Location"].endswith(
        "/therapy/pembrolizumab")
    missing = concept_client.get("/target/no-such-thing")
    assert missing.status_code == 404
    assert "no such therapy, cancer type or target" in missing.get_data(as_text=True)
    assert concept_client.get("/target/no-such-thing/feed.json").status_code == 404
    escaped = concept_client.get("/cancer/%3Cscript%3E").get_data(as_text=True)
    assert "<script>" not in escaped


def test_concept_feed_is_the_search_feed_filtered_on_it(concept_client):
    response = concept_client.get("/cancer/melanoma/feed.json")
    assert response.status_code == 200
    assert response.content_type.startswith("application/feed+json")
    feed = json.loads(response.get_data(as_text=True))
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert [item["title"] for item in feed["items"]] == [
        "Nivolumab in melanoma", "Pembrolizumab in melanoma",
        "Pembrolizumab in melanoma, years ago"]


def test_target_page(concept_client):
    html = concept_client.get("/target/pd-l1").get_data(as_text=True)
    assert "<h1>PD-L1</h1>" in html and "Nivolumab in melanoma" in html


def test_article_tags_lead_to_concept_pages_and_labels_are_shown(concept_client):
    search = concept_client.get("/search?therapy=pembrolizumab").get_data(as_text=True)
    assert 'href="/therapy/pembrolizumab">about pembrolizumab</a>' in search
    link = re.search(r'<a href="(/articles/\d+)">Pembrolizumab in NSCLC</a>', search).group(1)
    article = concept_client.get(link).get_data(as_text=True)
    assert 'href="/therapy/pembrolizumab"' in article
    assert 'href="/cancer/non-small-cell-lung-cancer"' in article
    labels = re.findall(r'<span class="label">([^<]+)</span>', article)
    assert labels == ["trial result", "phase 3", "first line"]


def test_therapy_cancer_map_counts_pairs_with_narrower_concepts_lifted(tagged_db, concept_client):
    from db.concepts import therapy_cancer_map

    with session_scope(tagged_db) as s:
        found = therapy_cancer_map(s)
        therapies = {c.slug: c.id for c in found.therapies}
        cancers = {c.slug: c.id for c in found.cancers}
        cell = {(t, c): found.counts.get((therapies[t], cancers[c]), 0)
                for t in therapies for c in cancers}
    assert cell[("pembrolizumab", "melanoma")] == 2  # the filtered one left out
    assert cell[("pd-1-inhibitor", "melanoma")] == 3  # nivolumab lifted to its class
    assert cell[("pembrolizumab", "lung-cancer")] == 1  # NSCLC lifted to lung cancer
    assert "immunotherapy" not in therapies and "cancer" not in cancers
    html = concept_client.get("/map").get_data(as_text=True)
    assert re.search(r'<td class="heat-5"><a href="/search\?therapy=pd-1-inhibitor&amp;'
                     r'cancer=melanoma"[^>]*>3</a></td>', html)
    assert 'style=' not in html  # intensity by class: the CSP allows no inline styles


def test_sources_page_lists_health(concept_client, tagged_db):
    from db.sources import CrawlOutcome, get_or_create_source, record_crawl

    with session_scope(tagged_db) as s:
        get_or_create_source(s, "Broken Wire", "feed", "http://127.0.0.1:1/feed")
        for _ in range(5):
            record_crawl(s, "Broken Wire", CrawlOutcome(error="HTTP 500"))
    html = concept_client.get("/sources").get_data(as_text=True)
    row = re.search(r"<tr>\s*<th scope=\"row\">.*?Broken Wire.*?</tr>", html, re.S).group(0)
    assert "HTTP 500" in row and "never" in row and 'class="health-unhealthy"' in row


def test_article_page_marks_tags_links_out_and_lists_related(tagged_db, concept_client):
    from db.articles import ArticleData, upsert_article

    with session_scope(tagged_db) as s:
        _, paper_id = upsert_article(s, ArticleData(
            canonical_url="https://doi.org/10.1000/xyz", url="https://doi.org/10.1000/xyz",
            title="Pembrolizumab paper", summary="Keytruda (pembrolizumab) in <NSCLC> & more.",
            kind="paper", doi="10.1000/xyz", pmid="12345678", nct_id="NCT01234567",
            mentions={"pembrolizumab": 1, "non-small-cell-lung-cancer": 1}))
    html = concept_client.get(f"/articles/{paper_id}").get_data(as_text=True)
    summary = re.search(r'<p class="summary"[^>]*>(.*?)</p>', html, re.S).group(1)
    assert summary == ('<mark class="tag tag-therapy">Keytruda</mark> (<mark class="tag '
                       'tag-therapy">pembrolizumab</mark>) in &lt;<mark class="tag tag-cancer">'
                       'NSCLC</mark>&gt; &amp; more.')
    assert 'href="https://doi.org/10.1000/xyz"' in html
    assert 'href="https://pubmed.ncbi.nlm.nih.gov/12345678/"' in html
    assert 'href="https://clinicaltrials.gov/study/NCT01234567"' in html
    related = re.search(r'<ul class="related">(.*?)</ul>', html, re.S).group(1)
    titles = re.findall(r'<a href="/articles/\d+">([^<]+)</a>', related)
    assert titles[0] == "Pembrolizumab in NSCLC"  # shares both tags
    assert "Off-topic item naming pembrolizumab" not in titles and "Pembrolizumab paper" not in \
        titles


def test_lineage_runs_from_the_top_down_and_ends_at_a_missing_or_repeated_parent(db_url):
    from sqlalchemy import select

    from db.concepts import get_concept, lineage
    from db.models import Concept

    with session_scope(db_url) as session:
        assert [c.slug for c in lineage(session, get_concept(session, "pembrolizumab"))] == [
            "immunotherapy", "immune-checkpoint-inhibitor", "pd-1-inhibitor"]
        assert lineage(session, get_concept(session, "immunotherapy")) == []
        session.add_all([
            Concept(label="CANCER", slug="loop-a", name="a", parent_slug="loop-b"),
            Concept(label="CANCER", slug="loop-b", name="b", parent_slug="loop-a"),
            Concept(label="CANCER", slug="orphan", name="o", parent_slug="not-stored"),
        ])
        session.flush()
        by_slug = {c.slug: c for c in session.scalars(select(Concept))}
        assert [c.slug for c in lineage(session, by_slug["loop-a"])] == ["loop-b"]
        assert lineage(session, by_slug["orphan"]) == []
