"""Feeds of any search: JSON Feed 1.1 at /feed.json and Atom 1.0 at /feed.atom, taking the
search page's parameters, and the same for each concept (/therapy/<slug>/feed.json …)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, abort, current_app, json, request, url_for
from lxml import etree
from markupsafe import escape
from werkzeug.datastructures import MultiDict

from db.concepts import Tag, concepts_for_articles, get_concept
from db.models import Article
from db.search import SearchPage, search_articles
from webapp.app import db_session
from webapp.pagecache import cached
from webapp.params import NO_SUCH_CONCEPT, SearchParams, search_params_or_400

bp = Blueprint("feeds", __name__)
FEED_SIZE = 50
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"


def absolute(endpoint: str, **values: Any) -> str:
    """An absolute URL: on IMMUNOFEED_BASE_URL when set, else on the request's own host."""
    base = current_app.config.get("BASE_URL") or ""
    if base:
        return base.rstrip("/") + url_for(endpoint, **values)
    return url_for(endpoint, _external=True, **values)


def rfc3339(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z") if value else None


def _title(params: SearchParams) -> str:
    parts = [f"“{params.q}”"] if params.q else []
    parts += params.slugs
    return "ImmunoFeed" + (": " + ", ".join(parts) if parts else "")


def _content_html(article: Article, tags: list[str]) -> str:
    """The item's summary as HTML, every crawled word escaped."""
    parts = [f"<p>{escape(article.summary or article.title)}</p>"]
    if tags:
        parts.append(f"<p>Tags: {escape(', '.join(tags))}</p>")
    if article.url.lower().startswith(("http://", "https://")):
        parts.append(f'<p><a href="{escape(article.url)}">Read it at the source</a></p>')
    return "".join(parts)


def _conditional(body: bytes | str, content_type: str, page: SearchPage) -> Response:
    """A feed response with ETag and Last-Modified, answering 304 when the reader has it."""
    response = Response(body, content_type=content_type)
    changed = [hit.article.fetched_at for hit in page.hits if hit.article.fetched_at]
    if changed:
        response.last_modified = max(changed)
    response.add_etag()
    return response.make_conditional(request)


def _item(article: Article, tags: list[str]) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": absolute("site.article", article_id=article.id),
        "url": absolute("site.article", article_id=article.id),
        "title": article.title,
        "summary": article.summary,
        "content_text": article.summary or article.title,
        "content_html": _content_html(article, tags),
        "date_published": rfc3339(article.published_at or article.fetched_at),
        "date_modified": rfc3339(article.fetched_at),
        "tags": tags,
    }
    if article.url.lower().startswith(("http://", "https://")):
        item["external_url"] = article.url
    if article.language:
        item["language"] = article.language
    if article.source is not None:
        item["authors"] = [{"name": article.source.name}]
    return item


def _concept_args(kind: str, slug: str) -> MultiDict[str, str]:
    """The search parameters of one concept's feed (its children included)."""
    if get_concept(db_session(), slug) is None:
        abort(404, description=NO_SUCH_CONCEPT)
    args = MultiDict(request.args)
    args.setlist(kind, [slug])
    return args


@bp.get("/<any(therapy, cancer, target):kind>/<slug>/feed.json")
@cached
def concept_feed(kind: str, slug: str) -> Response:
    return _json_feed(search_params_or_400(_concept_args(kind, slug)))


@bp.get("/<any(therapy, cancer, target):kind>/<slug>/feed.atom")
@cached
def concept_atom(kind: str, slug: str) -> Response:
    return _atom_feed(search_params_or_400(_concept_args(kind, slug)))


@bp.get("/feed.json")
@cached
def json_feed() -> Response:
    return _json_feed(search_params_or_400(request.args))


@bp.get("/feed.atom")
@cached
def atom_feed() -> Response:
    return _atom_feed(search_params_or_400(request.args))


def _newest(params: SearchParams) -> tuple[SearchPage, dict[int, list[Tag]]]:
    session = db_session()
    page = search_articles(  # a feed is read newest first, whatever the page sorts by
        session, params.parsed, params.slugs, page=params.page, per_page=FEED_SIZE, sort="date",
        filters=params.others, facet_limit=0,  # a feed shows no facets
    )
    return page, concepts_for_articles(session, (hit.article.id for hit in page.hits))


def _json_feed(params: SearchParams) -> Response:
    page, tags = _newest(params)
    feed: dict[str, Any] = {
        "version": JSON_FEED_VERSION,
        "title": _title(params),
        "home_page_url": absolute("site.search", **params.query_args(page=None, sort=None)),
        "feed_url": absolute("feeds.json_feed", **params.query_args(sort=None)),
        "description": "Cancer-immunotherapy news and literature, tagged by therapy, cancer and "
        "target.",
        "language": "en",
        "items": [
            _item(hit.article, [c.name for c in tags[hit.article.id]]) for hit in page.hits
        ],
    }
    if page.page < page.pages:
        feed["next_url"] = absolute(
            "feeds.json_feed", **params.query_args(sort=None, page=page.page + 1)
        )
    body = json.dumps(feed, ensure_ascii=False, indent=1)
    return _conditional(body, "application/feed+json; charset=utf-8", page)


ATOM = "http://www.w3.org/2005/Atom"
# characters XML 1.0 cannot carry at all; crawled text now and then holds one
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _atom(parent: etree._Element, tag: str, text: str | None = None,
          **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{ATOM}}}{tag}",
                               {k: _NOT_XML.sub("", v) for k, v in attributes.items()})
    if text is not None:
        element.text = _NOT_XML.sub("", text)
    return element


def _atom_feed(params: SearchParams) -> Response:
    """Atom 1.0 (RFC 4287) built with lxml, which escapes every text and attribute."""
    page, tags = _newest(params)
    feed = etree.Element(f"{{{ATOM}}}feed", nsmap={None: ATOM})
    feed.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    self_url = absolute("feeds.atom_feed", **params.query_args(sort=None))
    _atom(feed, "id", self_url)
    _atom(feed, "title", _title(params))
    _atom(feed, "subtitle", "Cancer-immunotherapy news and literature, tagged by therapy, "
          "cancer and target.")
    # the newest change among the items; a feed with none was last changed at the epoch
    _atom(feed, "updated", rfc3339(max((hit.article.fetched_at for hit in page.hits),
                                        default=datetime(1970, 1, 1, tzinfo=UTC))))
    _atom(feed, "link", rel="alternate", type="text/html",
          href=absolute("site.search", **params.query_args(page=None, sort=None)))
    _atom(feed, "link", rel="self", type="application/atom+xml", href=self_url)
    if page.page < page.pages:
        _atom(feed, "link", rel="next", type="application/atom+xml",
              href=absolute("feeds.atom_feed", **params.query_args(sort=None, page=page.page + 1)))
    _atom(_atom(feed, "author"), "name", "ImmunoFeed")
    for hit in page.hits:
        article = hit.article
        url = absolute("site.article", article_id=article.id)
        entry = _atom(feed, "entry")
        _atom(entry, "id", url)
        _atom(entry, "title", article.title)
        _atom(entry, "link", rel="alternate", type="text/html", href=url)
        if article.url.lower().startswith(("http://", "https://")):
            _atom(entry, "link", rel="related", href=article.url)
        _atom(entry, "published", rfc3339(article.published_at or article.fetched_at))
        _atom(entry, "updated", rfc3339(article.fetched_at))
        if article.source is not None:
            _atom(_atom(entry, "author"), "name", article.source.name)
        if article.summary:
            _atom(entry, "summary", article.summary)
        for concept in tags[article.id]:
            _atom(entry, "category", term=concept.slug, label=concept.name)
    body = etree.tostring(feed, xml_declaration=True, encoding="utf-8", pretty_print=True)
    return _conditional(body, "application/atom+xml; charset=utf-8", page)
