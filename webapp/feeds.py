"""Feeds of any search: JSON Feed 1.1 at /feed.json, taking the search page's parameters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Response, abort, current_app, json, request, url_for
from werkzeug.datastructures import MultiDict

from db.concepts import concepts_for_articles, get_concept
from db.models import Article
from db.search import search_articles
from webapp.app import db_session
from webapp.params import BadParameter, SearchParams

bp = Blueprint("feeds", __name__)
FEED_SIZE = 50
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"


def absolute(endpoint: str, **values: Any) -> str:
    """An absolute URL: on IMMUNOFEED_BASE_URL when set, else on the request's own host."""
    base = current_app.config.get("BASE_URL") or ""
    if base:
        return base.rstrip("/") + url_for(endpoint, **values)
    return url_for(endpoint, _external=True, **values)


def _rfc3339(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z") if value else None


def _title(params: SearchParams) -> str:
    parts = [f"“{params.q}”"] if params.q else []
    parts += params.slugs
    return "ImmunoFeed" + (": " + ", ".join(parts) if parts else "")


def _item(article: Article, tags: list[str]) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": absolute("site.article", article_id=article.id),
        "url": absolute("site.article", article_id=article.id),
        "title": article.title,
        "summary": article.summary,
        "content_text": article.summary or article.title,
        "date_published": _rfc3339(article.published_at or article.fetched_at),
        "date_modified": _rfc3339(article.fetched_at),
        "tags": tags,
    }
    if article.url.lower().startswith(("http://", "https://")):
        item["external_url"] = article.url
    if article.language:
        item["language"] = article.language
    if article.source is not None:
        item["authors"] = [{"name": article.source.name}]
    return item


@bp.get("/<any(therapy, cancer, target):kind>/<slug>/feed.json")
def concept_feed(kind: str, slug: str) -> Response:
    """The feed of one concept (its children included): the search feed filtered on it."""
    if get_concept(db_session(), slug) is None:
        abort(404, description="There is no such therapy, cancer type or target.")
    args = MultiDict(request.args)
    args.setlist(kind, [slug])
    return _json_feed(args)


@bp.get("/feed.json")
def json_feed() -> Response:
    return _json_feed(request.args)


def _json_feed(args: MultiDict[str, str]) -> Response:
    try:
        params = SearchParams.from_args(args)
    except BadParameter as exc:
        abort(400, description=str(exc))
    session = db_session()
    page = search_articles(  # a feed is read newest first, whatever the page sorts by
        session, params.parsed, params.slugs, page=params.page, per_page=FEED_SIZE, sort="date"
    )
    tags = concepts_for_articles(session, (hit.article.id for hit in page.hits))
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
    return Response(body, content_type="application/feed+json; charset=utf-8")
