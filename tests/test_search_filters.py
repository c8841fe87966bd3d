"""Search beyond words and concepts: kind, source and date range, as URL parameters or typed in
the search box (type:trial, source:"…", therapy:…), with facets for kind, source and year."""

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from db.articles import ArticleData, upsert_article
from db.query import parse_query
from db.session import session_scope
from db.sources import get_or_create_source
from tests.conftest import app_client

ITEMS = [  # title, kind, source, published
    ("Pembrolizumab trial in melanoma", "trial", "ClinicalTrials.gov", datetime(2025, 3, 1)),
    ("Pembrolizumab paper on melanoma", "paper", "PubMed", datetime(2026, 2, 10)),
    ("Pembrolizumab preprint on melanoma", "preprint", "Europe PMC", datetime(2026, 6, 5)),
    ("Pembrolizumab news on melanoma", "news", "Oncology Wire", datetime(2026, 9, 9)),
    ("More pembrolizumab news on melanoma", "news", "Oncology Wire", datetime(2024, 12, 31)),
]


@pytest.fixture
def client(db_url):
    with session_scope(db_url) as s:
        for name in {source for _, _, source, _ in ITEMS}:
            get_or_create_source(s, name, "feed", "http://127.0.0.1/" + name.replace(" ", ""))
        for i, (title, kind, source, published) in enumerate(ITEMS):
            upsert_article(s, ArticleData(
                canonical_url=f"http://127.0.0.1/{i}", url=f"http://127.0.0.1/{i}",
                title=title, body=title, kind=kind, source_name=source,
                published_at=published.replace(tzinfo=UTC),
                mentions={"pembrolizumab": 1, "melanoma": 1}))
    return app_client(db_url)


def _api_titles(client, query):
    response = client.get(f"/api/v1/articles?limit=100&{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return sorted(a["title"] for a in response.get_json()["articles"]), response.get_json()


def test_fields_typed_in_the_box_are_filters():
    parsed = parse_query('melanoma therapy:pembrolizumab source:"Oncology Wire" type:trial')
    assert [t.text for t in parsed.terms()] == ["melanoma"]
    assert parsed.fields == {"therapy": ["pembrolizumab"], "source": ["Oncology Wire"],
                             "type": ["trial"]}
    assert parse_query("ratio:5").fields == {}


def test_kind_source_and_dates_narrow_the_results(client):
    titles, data = _api_titles(client, "kind=news")
    assert titles == ["More pembrolizumab news on melanoma", "Pembrolizumab news on melanoma"]
    titles, _ = _api_titles(client, "kind=paper&kind=preprint")
    assert titles == ["Pembrolizumab paper on melanoma", "Pembrolizumab preprint on melanoma"]
    titles, _ = _api_titles(client, "source=PubMed")
    assert titles == ["Pembrolizumab paper on melanoma"]
    titles, _ = _api_titles(client, "from=2026-01-01&to=2026-06-05")
    assert titles == ["Pembrolizumab paper on melanoma", "Pembrolizumab preprint on melanoma"]
    titles, _ = _api_titles(client, "from=2025&to=2025")
    assert titles == ["Pembrolizumab trial in melanoma"]
    titles, _ = _api_titles(client, 'q=melanoma+type:trial')
    assert titles == ["Pembrolizumab trial in melanoma"]


def test_facets_count_kind_source_and_year(client):
    _, data = _api_titles(client, "q=pembrolizumab")
    facets = {label: {v["slug"]: v["count"] for v in values}
              for label, values in data["facets"].items()}
    assert facets["KIND"] == {"news": 2, "paper": 1, "preprint": 1, "trial": 1}
    assert facets["SOURCE"] == {"Oncology Wire": 2, "PubMed": 1, "Europe PMC": 1,
                                "ClinicalTrials.gov": 1}
    assert facets["YEAR"] == {"2026": 3, "2025": 1, "2024": 1}
    assert [v["slug"] for v in data["facets"]["YEAR"]] == ["2026", "2025", "2024"]


def test_search_page_moves_typed_filters_into_the_url_and_offers_the_facets(client):
    moved = client.get("/search?q=melanoma+type:news+therapy:pembrolizumab")
    assert moved.status_code == 302
    target = urlsplit(moved.headers["Location"])
    assert parse_qs(target.query) == {"q": ["melanoma"], "kind": ["news"],
                                      "therapy": ["pembrolizumab"]}
    html = client.get(f"{target.path}?{target.query}").get_data(as_text=True)
    assert "2 articles" in html and "kind: news" in html
    page = client.get("/search?q=pembrolizumab").get_data(as_text=True)
    assert 'href="/search?q=pembrolizumab&amp;kind=trial"' in page
    assert 'href="/search?q=pembrolizumab&amp;source=PubMed"' in page
    assert 'href="/search?q=pembrolizumab&amp;from=2025-01-01&amp;to=2025-12-31"' in page
    dated = client.get("/search?q=pembrolizumab&from=2025-01-01&to=2025-12-31")
    assert "1 article" in dated.get_data(as_text=True)


@pytest.mark.parametrize("query,message", [
    ("kind=blog", "kind must be one of"), ("from=yesterday", "from must be a date"),
    ("to=2026-02-30", "to must be a date"), ("from=2026-05-01&to=2026-01-01", "must not come"),
])
def test_bad_filters_are_400(client, query, message):
    page = client.get(f"/search?{query}")
    assert page.status_code == 400 and message in page.get_data(as_text=True)
    api = client.get(f"/api/v1/articles?{query}")
    assert api.status_code == 400 and message in api.get_json()["error"]["message"]


def test_a_type_typed_wrong_in_the_box_is_left_out_not_an_error(client):
    titles, _ = _api_titles(client, "q=melanoma+type:blog")
    assert len(titles) == len(ITEMS)
    moved = client.get("/search?q=melanoma+type:blog", follow_redirects=True)
    assert moved.status_code == 200 and "5 articles" in moved.get_data(as_text=True)


def test_home_puts_each_kind_in_its_place(client):
    html = client.get("/").get_data(as_text=True)
    news = html[html.index('id="news-heading"'):html.index('id="papers-heading"')]
    papers = html[html.index('id="papers-heading"'):html.index('id="trials-heading"')]
    trials = html[html.index('id="trials-heading"'):]
    assert "Pembrolizumab news on melanoma" in news and "paper on" not in news
    assert "Pembrolizumab paper on melanoma" in papers and "preprint on melanoma" in papers
    assert "Pembrolizumab trial in melanoma" in trials and "news on" not in trials
