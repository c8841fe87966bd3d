"""The search parameters shared by the search page and its feeds, so every view of a search
has the same URL query."""

from __future__ import annotations

from dataclasses import dataclass, field

from werkzeug.datastructures import MultiDict

from db.query import ParsedQuery, parse_query

FACET_PARAMS = {"therapy": "THERAPY", "cancer": "CANCER", "target": "TARGET"}
MAX_PAGE = 1000
MAX_FILTERS = 10


class BadParameter(ValueError):
    """A parameter the reader can fix; the message says how."""


@dataclass
class SearchParams:
    q: str = ""
    filters: dict[str, list[str]] = field(default_factory=dict)  # param -> slugs
    page: int = 1
    sort: str = "relevance"
    parsed: ParsedQuery = field(default_factory=lambda: parse_query(""))

    @classmethod
    def from_args(cls, args: MultiDict[str, str]) -> SearchParams:
        q = args.get("q", "")
        parsed = parse_query(q)
        filters = {}
        for name in FACET_PARAMS:
            values = [v.strip() for v in args.getlist(name) if v.strip()]
            if values:
                filters[name] = list(dict.fromkeys(values))[:MAX_FILTERS]
        raw_page = args.get("page", "1")
        if not raw_page.isdigit() or not 1 <= int(raw_page) <= MAX_PAGE:
            raise BadParameter(f"page must be a whole number from 1 to {MAX_PAGE}.")
        sort = args.get("sort", "relevance")
        if sort not in ("relevance", "date"):
            raise BadParameter("sort must be 'relevance' or 'date'.")
        return cls(q=parsed.raw, filters=filters, page=int(raw_page), sort=sort, parsed=parsed)

    @property
    def slugs(self) -> list[str]:
        return [slug for values in self.filters.values() for slug in values]

    def query_args(self, **changes: object) -> dict[str, object]:
        """URL query for this search, with CHANGES applied (None removes a key)."""
        args: dict[str, object] = {}
        if self.q:
            args["q"] = self.q
        args.update(self.filters)
        if self.sort != "relevance":
            args["sort"] = self.sort
        if self.page != 1:
            args["page"] = self.page
        for key, value in changes.items():
            if value is None:
                args.pop(key, None)
            else:
                args[key] = value
        return args

    def with_filter(self, param: str, slug: str) -> dict[str, object]:
        values = self.filters.get(param, [])
        new = values if slug in values else [*values, slug]
        return self.query_args(**{param: new, "page": None})

    def without_filter(self, param: str, slug: str) -> dict[str, object]:
        remaining = [v for v in self.filters.get(param, []) if v != slug]
        return self.query_args(**{param: remaining or None, "page": None})
