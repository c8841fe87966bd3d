"""The site and JSON Feed, through Flask's test client over a really crawled database."""

import json
import re
from datetime import datetime
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from db.articles import ArticleData, upsert_article
from db.session import session_scope
from tests.conftest import app_client


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("a", "link"):
            self.links.append((tag, dict(attrs)))


def links(html):
    parser = Links()
    parser.feed(html)
    return parser.links


def heading(html):
    return " ".join(re.search(r"<h1[^>]*>(.*?)</h1>", html, re.S).group(1).split())


def result_titles(html):
    return re.findall(r'<li class="result">\s*<h2><a href="[^"]+">(.*?)</a>', html)


def test_home_lists_latest_news_by_day_then_papers_and_trials(client):
    html = client.get("/").get_data(as_text=True)
    assert len(result_titles(html)) == 15
    days = re.findall(r'<h3 class="day">([^<]+)</h3>', html)
    assert days and len(days) == len(set(days))
    assert [datetime.strptime(d, "%A %d %B %Y") for d in days] == sorted(
        (datetime.strptime(d, "%A %d %B %Y") for d in days), reverse=True)
    assert '<h2 id="papers-heading">Papers and preprints</h2>' in html
    assert '<h2 id="trials-heading">Trials updated</h2>' in html
    assert 'class="chip chip-therapy"' in html and 'class="summary"' in html
    hrefs = [a["href"] for tag, a in links(html) if tag == "a"]
    assert "/search?therapy=pembrolizumab" in hrefs


def test_search_finds_tagged_articles_and_offers_facets(client):
    html = client.get("/search?q=pembrolizumab").get_data(as_text=True)
    titles = result_titles(html)
    assert len(titles) >= 4 and heading(html).startswith(f"{len(titles)} articles")
    assert "<mark>" in html
    facet = re.search(r'<a href="(/search\?q=pembrolizumab&amp;cancer=[^"]+)">([^<]+)</a> '
                      r'<span class="count">(\d+)</span>', html)
    assert facet, "expected a cancer facet with a count"
    href, name, count = facet.groups()
    narrowed = client.get(href.replace("&amp;", "&")).get_data(as_text=True)
    assert len(result_titles(narrowed)) == int(count)
    assert "remove filter" in narrowed


def test_facet_filter_on_a_parent_includes_children(client):
    html = client.get("/search?cancer=lung-cancer").get_data(as_text=True)
    # the NSCLC and SCLC stories are tagged with the children, not "lung cancer" itself
    assert len(result_titles(html)) >= 4


def test_article_page(client):
    html = client.get("/search?q=tarlatamab").get_data(as_text=True)
    href = next(a["href"] for tag, a in links(html) if a.get("href", "").startswith("/articles/"))
    page = client.get(href)
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Tarlatamab beats chemotherapy" in text and "DLL3" in text
    assert "Read the full article at the source" in text


@pytest.mark.parametrize("q", ['"', "AND", "*", "NEAR(", "x" * 5000, "(", "OR OR", "-", "\x00"])
def test_malformed_queries_get_a_friendly_page(client, q):
    response = client.get("/search", query_string={"q": q})
    # a NUL character is refused in every parameter (tests/test_api.py), the rest are searched
    assert response.status_code == (400 if q == "\x00" else 200)
    html = response.get_data(as_text=True)
    assert "Traceback" not in html and "Internal Server Error" not in html
    assert "<title>" in html


def test_bad_parameters_are_400_with_a_message(client):
    response = client.get("/search?page=abc")
    assert response.status_code == 400
    assert "page must be a whole number" in response.get_data(as_text=True)
    assert client.get("/search?sort=upside-down").status_code == 400
    assert client.get("/articles/999999").status_code == 404


def test_crawled_text_is_always_escaped(db_url):
    evil = '<script>alert("x")</script> immunoevil'
    with session_scope(db_url) as s:
        _, article_id = upsert_article(s, ArticleData(
            canonical_url="https://evil.example/1", url="javascript:alert(1)", title=evil,
            body=evil, summary=evil, mentions={"melanoma": 1}))
    client = app_client(db_url)
    for path in ("/", "/search?q=immunoevil", f"/articles/{article_id}"):
        html = client.get(path).get_data(as_text=True)
        assert "<script>alert" not in html and "&lt;script&gt;" in html
        assert "javascript:" not in html
    reflected = client.get("/search", query_string={"q": "<b>hi</b>"}).get_data(as_text=True)
    assert "<b>hi</b>" not in reflected and "&lt;b&gt;hi&lt;/b&gt;" in reflected
    assert "script-src 'self'" in client.get("/").headers["Content-Security-Policy"]


def _check_json_feed(response):
    """JSON Feed 1.1, field by field (https://jsonfeed.org/version/1.1)."""
    assert response.status_code == 200
    assert response.mimetype == "application/feed+json"
    feed = json.loads(response.data)
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert isinstance(feed["title"], str) and feed["title"]
    for key in ("home_page_url", "feed_url"):
        assert urlsplit(feed[key]).scheme in ("http", "https")
    assert isinstance(feed["items"], list)
    ids = [item["id"] for item in feed["items"]]
    assert len(ids) == len(set(ids))
    for item in feed["items"]:
        assert isinstance(item["id"], str)
        assert "content_html" in item or "content_text" in item
        assert urlsplit(item["url"]).scheme in ("http", "https")
        assert urlsplit(item.get("external_url", "https:")).scheme in ("http", "https")
        for key in ("date_published", "date_modified"):
            datetime.fromisoformat(item[key].replace("Z", "+00:00"))  # RFC 3339
        assert all(isinstance(t, str) for t in item["tags"])
        assert all(isinstance(a["name"], str) for a in item.get("authors", []))
    return feed


def test_json_feed_of_everything(client):
    feed = _check_json_feed(client.get("/feed.json"))
    assert len(feed["items"]) >= 30
    dates = [item["date_published"] for item in feed["items"]]
    assert dates == sorted(dates, reverse=True)


def test_json_feed_of_a_search(client):
    feed = _check_json_feed(client.get("/feed.json?q=pembrolizumab"))
    assert feed["items"] and "pembrolizumab" in feed["title"]
    for item in feed["items"]:
        assert "pembrolizumab" in [t.lower() for t in item["tags"]]
    assert parse_qs(urlsplit(feed["feed_url"]).query) == {"q": ["pembrolizumab"]}


def test_json_feed_pages_with_next_url(app):
    from webapp import feeds

    original, feeds.FEED_SIZE = feeds.FEED_SIZE, 10
    try:
        client = app.test_client()
        first = _check_json_feed(client.get("/feed.json"))
        assert "next_url" in first
        second = _check_json_feed(client.get(first["next_url"]))
        assert not {i["id"] for i in first["items"]} & {i["id"] for i in second["items"]}
    finally:
        feeds.FEED_SIZE = original


def test_base_url_setting_makes_feed_links(crawled_db):
    from webapp import create_app

    app = create_app({"TESTING": True, "DATABASE_URL": crawled_db,
                      "BASE_URL": "https://immunofeed.example/"})
    feed = _check_json_feed(app.test_client().get("/feed.json"))
    assert feed["items"][0]["url"].startswith("https://immunofeed.example/articles/")


def test_pages_link_their_feed(client):
    html = client.get("/search?q=melanoma").get_data(as_text=True)
    alternates = [a for tag, a in links(html) if tag == "link" and a.get("rel") == "alternate"]
    assert alternates[0]["type"] == "application/feed+json"
    assert alternates[0]["href"] == "/feed.json?q=melanoma"
    assert alternates[1]["type"] == "application/atom+xml"
    assert alternates[1]["href"] == "/feed.atom?q=melanoma"


def _parsed_atom(response):
    import feedparser

    assert response.status_code == 200
    assert response.content_type == "application/atom+xml; charset=utf-8"
    parsed = feedparser.parse(response.get_data())
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    return parsed


def test_atom_feed_of_a_search_reads_back_cleanly(client):
    json_feed = json.loads(client.get("/feed.json?q=pembrolizumab").get_data(as_text=True))
    atom = _parsed_atom(client.get("/feed.atom?q=pembrolizumab"))
    assert "pembrolizumab" in atom.feed.title
    assert [e.link for e in atom.entries] == [i["url"] for i in json_feed["items"]]
    assert [e.title for e in atom.entries] == [i["title"] for i in json_feed["items"]]
    for entry, item in zip(atom.entries, json_feed["items"], strict=True):
        assert entry.id == item["id"] and entry.summary == item["summary"]
        assert {t.label for t in entry.tags} == set(item["tags"])
        assert entry.published_parsed and entry.updated_parsed and entry.author
    links = {link.rel: link.href for link in atom.feed.links}
    assert parse_qs(urlsplit(links["self"]).query) == {"q": ["pembrolizumab"]}
    assert urlsplit(links["alternate"]).path == "/search"


def test_atom_feed_pages_with_a_next_link(app):
    from webapp import feeds

    original, feeds.FEED_SIZE = feeds.FEED_SIZE, 10
    try:
        client = app.test_client()
        first = _parsed_atom(client.get("/feed.atom"))
        (next_url,) = [link.href for link in first.feed.links if link.rel == "next"]
        second = _parsed_atom(client.get(next_url))
        assert len(first.entries) == 10
        assert not {e.id for e in first.entries} & {e.id for e in second.entries}
    finally:
        feeds.FEED_SIZE = original


def test_atom_feed_of_a_concept_and_of_nothing(client):
    atom = _parsed_atom(client.get("/therapy/pembrolizumab/feed.atom"))
    assert atom.entries and all(
        "pembrolizumab" in {t.term for t in e.tags} for e in atom.entries)
    empty = _parsed_atom(client.get("/feed.atom?q=nothingmatchesthisword"))
    assert empty.entries == []
    assert client.get("/feed.atom?page=0").status_code == 400


def test_unreachable_database_is_a_503_page():
    from webapp import create_app

    # nothing listens on port 1: the connection is refused at once
    app = create_app({"TESTING": True,
                      "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"})
    response = app.test_client().get("/")
    assert response.status_code == 503
    html = response.get_data(as_text=True)
    assert "not available right now" in html and "Traceback" not in html


def _client_with_one_article(db_url, **fields):
    """A client of a database holding one article (at http://127.0.0.1/one) with FIELDS."""
    with session_scope(db_url) as s:
        upsert_article(s, ArticleData(canonical_url="http://127.0.0.1/one",
                                      url="http://127.0.0.1/one", **fields))
    return app_client(db_url)


def test_atom_feed_survives_characters_xml_cannot_hold(db_url):
    client = _client_with_one_article(
        db_url, title="Nivolumab\x0b in <melanoma> & \x01more", summary="A \x1fsummary.",
        mentions={"nivolumab": 1})
    (entry,) = _parsed_atom(client.get("/feed.atom")).entries
    assert entry.title == "Nivolumab in <melanoma> & more" and entry.summary == "A summary."


def test_article_numbers_beyond_any_database_integer_are_404(client):
    assert client.get("/articles/9223372036854775808").status_code == 404
    assert client.get("/api/v1/articles/99999999999999999999999").status_code == 404


@pytest.mark.parametrize("path", ["/feed.json?q=melanoma", "/feed.atom?q=melanoma",
                                  "/cancer/melanoma/feed.json"])
def test_feeds_answer_304_to_a_reader_that_has_them(client, path):
    first = client.get(path)
    assert first.status_code == 200
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
    assert client.get(path, headers={"If-Modified-Since": modified}).status_code == 304
    assert client.get(path, headers={"If-None-Match": '"other"'}).status_code == 200


def test_json_feed_items_carry_escaped_html(db_url):
    client = _client_with_one_article(
        db_url, title="<img src=x onerror=alert(1)>", summary="Nivolumab <b>works</b> & more",
        mentions={"nivolumab": 1})
    (item,) = _check_json_feed(client.get("/feed.json"))["items"]
    assert item["content_html"].startswith("<p>Nivolumab &lt;b&gt;works&lt;/b&gt; &amp; more</p>")
    assert "<b>" not in item["content_html"]
    assert 'href="http://127.0.0.1/one"' in item["content_html"]


@settings(max_examples=300, deadline=None)
@given(args=st.dictionaries(
    st.sampled_from(["q", "therapy", "cancer", "kind", "sort", "page", "from", "source"]),
    st.one_of(st.none(), st.text(max_size=12), st.integers(0, 99),
              st.lists(st.one_of(st.none(), st.text(max_size=8)), max_size=3))),
    slug=st.text(max_size=12), article_id=st.integers(0, 2**31 - 1))
def test_page_links_are_the_urls_url_for_builds(args, slug, article_id):
    """webapp/links.py builds a page's many links without url_for's routing work: the same
    URLs, quoting and all, for any parameters a search can carry."""
    from flask import url_for

    from webapp.links import article_url, concept_url, fixed_url, link, search_url

    app = _link_app()
    with app.test_request_context("/", base_url="http://example.org/prefix"):
        assert search_url(args) == url_for("site.search", **args)
        assert search_url(**args) == url_for("site.search", **args)
        for endpoint in ("feeds.json_feed", "feeds.atom_feed", "subscribe.subscribe_form"):
            assert link(endpoint, args) == url_for(endpoint, **args)
        assert fixed_url("static", filename=slug) == url_for("static", filename=slug)
        for kind in ("therapy", "cancer", "target"):
            assert concept_url(kind, slug) == url_for("site.concept", kind=kind, slug=slug)
        assert article_url(article_id) == url_for("site.article", article_id=article_id)


def test_tag_chips_kept_between_pages_link_as_url_for_does_wherever_the_site_is_mounted():
    """A tag's HTML is kept once written: the next page, or a site mounted elsewhere, still
    gets its own links, and a name is escaped."""
    from flask import url_for
    from markupsafe import escape

    from db.concepts import Tag
    from webapp.links import tag_chips

    app = _link_app()
    tags = [Tag(1, "pd-1 & co", "THERAPY", "<b>PD-1</b>"), Tag(2, "nsclc", "CANCER", "NSCLC")]
    for mount in ("http://example.org/prefix", "http://example.org/other", "http://example.org"):
        for _ in range(2):
            with app.test_request_context("/", base_url=mount):
                html = str(tag_chips(tags))
                pages = str(tag_chips(tags, to_concept_pages=True))
                assert html.count("<li>") == 2 and "<b>" not in html
                assert f'href="{escape(url_for("site.search", therapy="pd-1 & co"))}"' in html
                assert f'href="{url_for("site.search", cancer="nsclc")}"' in html
                assert 'title="therapy">&lt;b&gt;PD-1&lt;/b&gt;</a>' in html
                assert f'href="{url_for("site.concept", kind="cancer", slug="nsclc")}"' in pages
    assert str(tag_chips([])) == ""


@settings(max_examples=300, deadline=None)
@given(q=st.text(max_size=12), page=st.integers(1, 9), sort=st.sampled_from(["relevance", "date"]),
       dates=st.sampled_from([{}, {"from": "2025-01-01"}, {"to": "2026-02-01"},
                              {"from": "2025-01-01", "to": "2026-02-01"}]),
       filters=st.lists(st.tuples(st.sampled_from(["therapy", "cancer", "target", "kind",
                                                   "source"]), st.text(min_size=1, max_size=8)),
                        max_size=4),
       param=st.sampled_from(["therapy", "cancer", "target", "kind", "source"]),
       slugs=st.lists(st.text(min_size=1, max_size=8), max_size=4))
def test_facet_links_are_those_query_args_and_search_url_build(q, page, sort, dates, filters,
                                                                param, slugs):
    """filter_links and year_links write the query's other parameters once for all of a
    facet's links: the same URLs as search_url(params.with_filter(param, slug)) and
    search_url(params.query_args(from=..., to=...)), whatever the query holds and wherever
    the facet's parameters stand in it (a slug already filtered on included)."""
    from werkzeug.datastructures import MultiDict

    from webapp.links import filter_links, search_url, year_links
    from webapp.params import KINDS, SearchParams

    class Facet:
        def __init__(self, slug: str) -> None:
            self.slug = slug

    args = MultiDict([("q", q), ("page", str(page)), ("sort", sort), *dates.items(),
                      *((name, value if name != "kind" else KINDS[len(value) % len(KINDS)])
                        for name, value in filters)])
    params = SearchParams.from_args(args)
    chosen = [*slugs, *params.filters.get(param, [])[:1]]
    facets = [Facet(slug) for slug in chosen]
    years = [Facet(str(year)) for year in (2024, 2026)]
    with _link_app().test_request_context("/", base_url="http://example.org/prefix"):
        assert filter_links(params, param, facets) == [
            (facet, search_url(params.with_filter(param, facet.slug))) for facet in facets]
        assert year_links(params, years) == [(year, search_url(params.query_args(**{
            "from": f"{year.slug}-01-01", "to": f"{year.slug}-12-31", "page": None})))
            for year in years]


def test_kept_paths_follow_where_the_site_is_mounted():
    """A path built once is kept per app and per mount: another mount gets its own."""
    from flask import url_for

    from webapp.links import fixed_url

    app = _link_app()
    for mount in ("http://example.org/a", "http://example.org/b", "http://example.org/a"):
        with app.test_request_context("/", base_url=mount):
            assert fixed_url("site.about") == url_for("site.about") == mount[18:] + "/about"
            assert fixed_url("static", filename="site.css") == mount[18:] + "/static/site.css"


_LINK_APP = []


def _link_app():
    if not _LINK_APP:
        from webapp import create_app
        _LINK_APP.append(create_app({"TESTING": True, "DATABASE_URL": "sqlite://"}))
    return _LINK_APP[0]
