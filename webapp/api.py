"""The JSON API under /api/v1: articles (every search filter, cursor paging), one article,
concepts (counts, hierarchy), one concept, sources; and POST /subscriptions for email digests.

Every answer is JSON, errors included ({"error": {"status", "message"}}), carries an ETag
(a repeated request with If-None-Match gets 304) and may be read from any origin (CORS, GET
only).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from flask import Blueprint, Response, request
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from db.articles import evidence_for, get_article
from db.concepts import (
    Tag,
    articles_per_month,
    children_of,
    co_occurring,
    concepts_for_articles,
    count_visible_tagged,
    get_concept,
    lineage,
    with_descendants,
)
from db.models import Article, ArticleConcept, Concept
from db.search import search_articles
from db.sources import source_statuses
from db.stories import also_reported
from webapp.app import db_session
from webapp.feeds import absolute, rfc3339
from webapp.pagecache import cached
from webapp.params import FACET_PARAMS, MAX_PAGE, NO_SUCH_CONCEPT, BadParameter, SearchParams
from webapp.subscribe import (
    ACCEPTED,
    SUBSCRIBE_LIMIT,
    SubscriptionError,
    limiter,
    read_request,
    request_subscription,
)

bp = Blueprint("api", __name__, url_prefix="/api/v1")
DEFAULT_LIMIT, MAX_LIMIT = 20, 100
LABELS = frozenset(FACET_PARAMS.values())


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, ensure_ascii=False, separators=(",", ":")), status=status,
                    content_type="application/json; charset=utf-8")


@bp.after_app_request  # every /api/ answer, errors for unknown paths included
def _cacheable_and_shared(response: Response) -> Response:
    if not is_api_request():
        return response
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Access-Control-Allow-Methods"] = "GET"
    if request.method == "GET" and response.status_code == 200:
        response.add_etag()
        response.make_conditional(request)
    return response


def error_response(status: int, message: str) -> Response:
    return _json({"error": {"status": status, "message": message}}, status)


# -- paging ----------------------------------------------------------------------------------

def _encode_cursor(page: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"page": page}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    """The page a cursor stands for; a cursor is opaque to clients, handed out as next_cursor."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        page = data["page"]
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise BadParameter("cursor is not one this API handed out.") from None
    if not isinstance(page, int) or isinstance(page, bool) or not 1 <= page <= MAX_PAGE:
        raise BadParameter("cursor is not one this API handed out.")
    return page


def _limit(args: MultiDict[str, str]) -> int:
    raw = args.get("limit", str(DEFAULT_LIMIT))
    if not raw.isdecimal() or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadParameter(f"limit must be a whole number from 1 to {MAX_LIMIT}.")
    return int(raw)


# -- shapes ----------------------------------------------------------------------------------

def _concept_ref(concept: Concept | Tag) -> dict[str, Any]:
    return {"slug": concept.slug, "label": concept.label, "name": concept.name}


def _article(article: Article, tags: list[Tag]) -> dict[str, Any]:
    extra = article.extra or {}
    return {
        "id": article.id,
        "url": absolute("site.article", article_id=article.id),
        "source_url": article.url if article.url.lower().startswith(("http://", "https://"))
        else None,
        "title": article.title,
        "summary": article.summary,
        "kind": article.kind,
        "language": article.language,
        "published": rfc3339(article.published_at),
        "fetched": rfc3339(article.fetched_at),
        "source": article.source.name if article.source else None,
        "identifiers": {name: getattr(article, name)
                        for name in ("doi", "pmid", "pmcid", "nct_id") if getattr(article, name)},
        "labels": extra.get("labels") or {"types": [], "phase": None, "settings": []},
        "tags": [_concept_ref(c) for c in tags],
    }


# -- endpoints -------------------------------------------------------------------------------

@bp.get("/articles")
@cached
def articles() -> Response:
    try:
        params = SearchParams.from_args(request.args)
        limit = _limit(request.args)
        page_number = _decode_cursor(request.args["cursor"]) if "cursor" in request.args else 1
    except BadParameter as exc:
        return error_response(400, str(exc))
    session = db_session()
    page = search_articles(session, params.parsed, params.slugs, page=page_number,
                           per_page=limit, sort=params.sort, filters=params.others)
    ids = [hit.article.id for hit in page.hits]
    tags = concepts_for_articles(session, ids)
    also = also_reported(session, ids)
    items = []
    for hit in page.hits:
        item = _article(hit.article, tags[hit.article.id])
        item["also_reported_by"] = [a.id for a in also.get(hit.article.id, [])]
        items.append(item)
    return _json({
        "articles": items,
        "total": page.total,
        "next_cursor": _encode_cursor(page.page + 1) if page.page < page.pages else None,
        "facets": {label: [{"slug": f.slug, "name": f.name, "count": f.count} for f in values]
                   for label, values in page.facets.items()},
    })


@bp.get("/articles/<int:article_id>")
def article(article_id: int) -> Response:
    session = db_session()
    found = get_article(session, article_id)
    if found is None or found.filtered:
        return error_response(404, "There is no article with that number.")
    data = _article(found, concepts_for_articles(session, [found.id])[found.id])
    data["evidence"] = [e.id for e in evidence_for(session, found)]
    return _json(data)


@bp.get("/concepts")
@cached
def concepts() -> Response:
    label = request.args.get("label")
    if label is not None and label not in LABELS:
        return error_response(400, "label must be THERAPY, CANCER or TARGET.")
    session = db_session()
    counts = dict(session.execute(
        select(ArticleConcept.concept_id, func.count(func.distinct(ArticleConcept.article_id)))
        .join(Article, Article.id == ArticleConcept.article_id)
        .where(Article.filtered.is_(False))
        .group_by(ArticleConcept.concept_id)).all())
    query = select(Concept).order_by(Concept.label, Concept.name)
    if label:
        query = query.where(Concept.label == label)
    return _json({"concepts": [
        {**_concept_ref(c), "parent": c.parent_slug, "articles": int(counts.get(c.id, 0))}
        for c in session.scalars(query)]})


@bp.get("/concepts/<slug>")
@cached
def concept(slug: str) -> Response:
    session = db_session()
    found = get_concept(session, slug)
    if found is None:
        return error_response(404, NO_SUCH_CONCEPT)
    ids = with_descendants(session, slug)
    months = articles_per_month(session, ids)
    parents = lineage(session, found)
    together = co_occurring(session, ids, leave_out=(c.id for c in parents))
    total = count_visible_tagged(session, ids)
    return _json({
        **_concept_ref(found),
        "synonyms": list(found.synonyms or []),
        "xrefs": dict(found.xrefs or {}),
        "parents": [_concept_ref(c) for c in parents],
        "children": [_concept_ref(c) for c in children_of(session, slug)],
        "articles": int(total),
        "per_month": [{"month": m, "articles": n} for m, n in months],
        "reported_with": [{**_concept_ref(c), "articles": n}
                          for values in together.values() for c, n in values],
    })


@bp.post("/subscriptions")
@limiter.limit(SUBSCRIBE_LIMIT)
def subscriptions() -> Response:
    """Ask for a digest: {"email", "topics": [concept slug or search URL, ...], "frequency"}.
    202 whether or not the address is already subscribed; the digest starts once the emailed
    confirmation link is followed."""
    if not request.is_json:
        return error_response(415, "Send the request as JSON (Content-Type: application/json).")
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return error_response(400, "The body must be a JSON object with email, topics and "
                                   "frequency.")
    session = db_session()
    try:
        wanted = read_request(session, data.get("email"), data.get("topics"),
                              data.get("frequency", "daily"))
    except SubscriptionError as exc:
        return error_response(400, str(exc))
    request_subscription(session, wanted)
    return _json({"status": "pending-confirmation", "message": ACCEPTED}, 202)


@bp.get("/openapi.json")
def openapi() -> Response:
    from webapp.openapi import openapi_document

    return _json(openapi_document())


@bp.get("/sources")
def sources() -> Response:
    return _json({"sources": [
        {"name": s.name, "type": s.type, "url": s.url, "health": s.health,
         "last_success": rfc3339(s.last_success), "last_error": s.last_error,
         "next_attempt": rfc3339(s.next_attempt), "articles": s.articles}
        for s in source_statuses(db_session())]})


def is_api_request() -> bool:
    return request.path == "/api/v1" or request.path.startswith("/api/")
