"""The OpenAPI 3.1 description of /api/v1, served at /api/v1/openapi.json. A test runs
schemathesis against the app with it, so it has to match what the endpoints really answer."""

from __future__ import annotations

from typing import Any

from db.search import KINDS
from webapp.api import DEFAULT_LIMIT, MAX_LIMIT


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema_type: str, **extra: Any) -> dict[str, Any]:
    return {"type": [schema_type, "null"], **extra}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": _json(_ref("Error"), "A parameter the client can fix; the message says how."),
    "404": _json(_ref("Error"), "No such thing."),
    "503": _json(_ref("Error"), "The database is unreachable for now."),
    "415": _json(_ref("Error"), "The body is not JSON."),
    "429": _json(_ref("Error"), "Too many requests from this client; try again later."),
    "503-mail": _json(_ref("Error"), "The database or the mail server is unreachable for now."),
}

# text of any kind but U+0000, which no parameter may hold (webapp/app.py answers 400)
_TEXT: dict[str, Any] = {"type": "string", "pattern": "^[^\\x00]*$"}

_SEARCH_PARAMETERS: list[dict[str, Any]] = [
    {"name": "q", "in": "query", "schema": {**_TEXT},
     "description": 'Words, "phrases", OR, -word or NOT word, prefix*.'},
    *({"name": name, "in": "query", "style": "form", "explode": True,
       "schema": {"type": "array", "items": {**_TEXT}, "maxItems": 10},
       "description": f"{name.capitalize()} concept slugs; a parent includes its children."}
      for name in ("therapy", "cancer", "target")),
    {"name": "kind", "in": "query", "style": "form", "explode": True,
     "schema": {"type": "array", "items": {"enum": list(KINDS)}, "maxItems": 10}},
    {"name": "source", "in": "query", "style": "form", "explode": True,
     "schema": {"type": "array", "items": {**_TEXT}, "maxItems": 10},
     "description": "Source names."},
    {"name": "from", "in": "query", "schema": {"type": "string", "format": "date"},
     "description": "Published on or after this day (YYYY-MM-DD, or a year)."},
    {"name": "to", "in": "query", "schema": {"type": "string", "format": "date"},
     "description": "Published on or before this day (YYYY-MM-DD, or a year)."},
    {"name": "sort", "in": "query", "schema": {"enum": ["relevance", "date"]}},
    {"name": "limit", "in": "query",
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                                         "default": DEFAULT_LIMIT}},
    {"name": "cursor", "in": "query", "schema": {**_TEXT},
     "description": "The next_cursor of the previous page."},
]

_SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["status", "message"],
        "properties": {"status": {"type": "integer"}, "message": {"type": "string"}}}}},
    "ConceptRef": {"type": "object", "required": ["slug", "label", "name"], "properties": {
        "slug": {"type": "string"}, "label": {"enum": ["THERAPY", "CANCER", "TARGET"]},
        "name": {"type": "string"}}},
    "Labels": {"type": "object", "required": ["types", "phase", "settings"], "properties": {
        "types": {"type": "array", "items": {"type": "string"}},
        "phase": _nullable("string"),
        "settings": {"type": "array", "items": {"type": "string"}}}},
    "Article": {"type": "object", "required": [
        "id", "url", "source_url", "title", "summary", "kind", "language", "published",
        "fetched", "source", "identifiers", "labels", "tags"], "properties": {
        "id": {"type": "integer"},
        "url": {"type": "string", "format": "uri"},
        "source_url": _nullable("string"),
        "title": {"type": "string"},
        "summary": {"type": "string"},
        "kind": {"type": "string"},
        "language": _nullable("string"),
        "published": _nullable("string", format="date-time"),
        "fetched": _nullable("string", format="date-time"),
        "source": _nullable("string"),
        "identifiers": {"type": "object", "additionalProperties": {"type": "string"}},
        "labels": _ref("Labels"),
        "tags": {"type": "array", "items": _ref("ConceptRef")}}},
    "ArticleList": {"type": "object", "required": ["articles", "total", "next_cursor", "facets"],
                    "properties": {
        "articles": {"type": "array", "items": {"allOf": [_ref("Article"), {
            "type": "object", "required": ["also_reported_by"], "properties": {
                "also_reported_by": {"type": "array", "items": {"type": "integer"}}}}]}},
        "total": {"type": "integer", "minimum": 0},
        "next_cursor": _nullable("string"),
        "facets": {"type": "object", "additionalProperties": {"type": "array", "items": {
            "type": "object", "required": ["slug", "name", "count"], "properties": {
                "slug": {"type": "string"}, "name": {"type": "string"},
                "count": {"type": "integer"}}}}}}},
    "ArticleDetail": {"allOf": [_ref("Article"), {
        "type": "object", "required": ["evidence"],
        "properties": {"evidence": {"type": "array", "items": {"type": "integer"}}}}]},
    "ConceptList": {"type": "object", "required": ["concepts"], "properties": {"concepts": {
        "type": "array", "items": {"allOf": [_ref("ConceptRef"), {
            "type": "object", "required": ["parent", "articles"], "properties": {
                "parent": _nullable("string"), "articles": {"type": "integer"}}}]}}}},
    "ConceptDetail": {"allOf": [_ref("ConceptRef"), {"type": "object", "required": [
        "synonyms", "xrefs", "parents", "children", "articles", "per_month", "reported_with"],
        "properties": {
            "synonyms": {"type": "array", "items": {"type": "string"}},
            "xrefs": {"type": "object", "additionalProperties": {"type": "string"}},
            "parents": {"type": "array", "items": _ref("ConceptRef")},
            "children": {"type": "array", "items": _ref("ConceptRef")},
            "articles": {"type": "integer"},
            "per_month": {"type": "array", "items": {
                "type": "object", "required": ["month", "articles"], "properties": {
                    "month": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
                    "articles": {"type": "integer"}}}},
            "reported_with": {"type": "array", "items": {"allOf": [_ref("ConceptRef"), {
                "type": "object", "required": ["articles"],
                "properties": {"articles": {"type": "integer"}}}]}}}}]},
    "SubscriptionRequest": {
        "type": "object", "required": ["email", "topics"], "properties": {
            "email": {"type": "string", "format": "email", "maxLength": 320},
            "topics": {"type": "array", "minItems": 1, "maxItems": 20, "items": {
                **_TEXT, "maxLength": 1000,
                "description": "A concept slug (pembrolizumab), a concept page URL or a search "
                               "page URL (https://…/search?q=…&cancer=…)."}},
            "frequency": {"enum": ["daily", "weekly"], "default": "daily"}}},
    "SubscriptionAccepted": {
        "type": "object", "required": ["status", "message"], "properties": {
            "status": {"const": "pending-confirmation"}, "message": {"type": "string"}}},
    "SourceList": {"type": "object", "required": ["sources"], "properties": {"sources": {
        "type": "array", "items": {"type": "object", "required": [
            "name", "type", "url", "health", "last_success", "last_error", "next_attempt",
            "articles"], "properties": {
            "name": {"type": "string"}, "type": {"type": "string"}, "url": {"type": "string"},
            "health": {"enum": ["new", "ok", "failing", "unhealthy"]},
            "last_success": _nullable("string", format="date-time"),
            "last_error": _nullable("string"),
            "next_attempt": _nullable("string", format="date-time"),
            "articles": {"type": "integer"}}}}}},
}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "ImmunoFeed API", "version": "1",
                 "description": "Cancer-immunotherapy news and literature, tagged by therapy, "
                                "cancer type and target. No parameter may hold a NUL "
                                "character (U+0000): such a request is answered 400."},
        "paths": {
            "/api/v1/articles": {"get": {
                "summary": "Search articles", "operationId": "listArticles",
                "parameters": _SEARCH_PARAMETERS,
                "responses": {"200": _json(_ref("ArticleList"), "A page of articles."),
                              "400": _ERRORS["400"], "503": _ERRORS["503"]}}},
            "/api/v1/articles/{article_id}": {"get": {
                "summary": "One article", "operationId": "getArticle",
                "parameters": [{"name": "article_id", "in": "path", "required": True,
                                "schema": {"type": "integer", "minimum": 0}}],
                "responses": {"200": _json(_ref("ArticleDetail"), "The article."),
                              "404": _ERRORS["404"], "503": _ERRORS["503"]}}},
            "/api/v1/concepts": {"get": {
                "summary": "Every concept", "operationId": "listConcepts",
                "parameters": [{"name": "label", "in": "query",
                                "schema": {"enum": ["THERAPY", "CANCER", "TARGET"]}}],
                "responses": {"200": _json(_ref("ConceptList"), "The concepts."),
                              "400": _ERRORS["400"], "503": _ERRORS["503"]}}},
            "/api/v1/concepts/{slug}": {"get": {
                "summary": "One concept", "operationId": "getConcept",
                "parameters": [{"name": "slug", "in": "path", "required": True,
                                "schema": {"type": "string", "pattern": "^[a-z0-9-]+$"}}],
                "responses": {"200": _json(_ref("ConceptDetail"), "The concept."),
                              "404": _ERRORS["404"], "503": _ERRORS["503"]}}},
            "/api/v1/subscriptions": {"post": {
                "summary": "Ask for an email digest", "operationId": "subscribe",
                "description": "Emails the address a confirmation link; the digest starts when "
                               "it is followed. The answer is the same whether or not the "
                               "address is already subscribed.",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": _ref("SubscriptionRequest")}}},
                "responses": {"202": _json(_ref("SubscriptionAccepted"),
                                           "A confirmation link is on its way."),
                              "400": _ERRORS["400"], "415": _ERRORS["415"],
                              "429": _ERRORS["429"], "503": _ERRORS["503-mail"]}}},
            "/api/v1/sources": {"get": {
                "summary": "Sources and their health", "operationId": "listSources",
                "responses": {"200": _json(_ref("SourceList"), "The sources."),
                              "503": _ERRORS["503"]}}},
        },
        "components": {"schemas": _SCHEMAS},
    }
