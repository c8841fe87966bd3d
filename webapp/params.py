"""The search parameters shared by the search page and its feeds, so every view of a search
has the same URL query."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import BadRequest

from db.query import ParsedQuery, parse_query, without_fields
from db.search import KINDS, Filters

FACET_PARAMS = {"therapy": "THERAPY", "cancer": "CANCER", "target": "TARGET"}
LABEL_PARAM = {label: param for param, label in FACET_PARAMS.items()}
NO_SUCH_CONCEPT = "There is no such therapy, cancer type or target."
# every parameter that may be given more than once: the concepts, then kind and source
LIST_PARAMS = (*FACET_PARAMS, "kind", "source")
QUERY_FIELDS = {"therapy": "therapy", "cancer": "cancer", "target": "target",
                "source": "source", "type": "kind"}  # "type:trial" in the search box
MAX_PAGE = 1000
MAX_FILTERS = 10
MAX_VALUE_CHARS = 200


def _day(name: str, raw: str, end: bool) -> date:
    """A date parameter: YYYY-MM-DD, or a year (its first or, for `to`, its last day)."""
    try:
        if len(raw) == 4 and raw.isdecimal():
            return date(int(raw), 12, 31) if end else date(int(raw), 1, 1)
        return date.fromisoformat(raw)
    except ValueError:
        raise BadParameter(f"{name} must be a date like 2026-05-31, or a year.") from None


class BadParameter(ValueError):
    """A parameter the reader can fix; the message says how."""


@dataclass
class SearchParams:
    q: str = ""
    filters: dict[str, list[str]] = field(default_factory=dict)  # param -> values
    page: int = 1
    sort: str = "relevance"
    parsed: ParsedQuery = field(default_factory=lambda: parse_query(""))
    since: date | None = None
    until: date | None = None

    @classmethod
    def from_args(cls, args: MultiDict[str, str]) -> SearchParams:
        q = args.get("q", "")
        parsed = parse_query(q)
        filters = {}
        for name in LIST_PARAMS:
            values = [v.strip()[:MAX_VALUE_CHARS] for v in args.getlist(name) if v.strip()]
            if name == "kind" and any(v not in KINDS for v in values):
                raise BadParameter(f"kind must be one of {', '.join(KINDS)}.")
            typed = [v[:MAX_VALUE_CHARS] for field_name, param in QUERY_FIELDS.items()
                     if param == name for v in parsed.fields.get(field_name, [])]
            if name == "kind" and any(v not in KINDS for v in typed):
                typed = [v for v in typed if v in KINDS]  # a typo in the box is not an error
                parsed.notice = f"type: can be {', '.join(KINDS)}; other types were left out."
            values += typed
            if values:
                filters[name] = list(dict.fromkeys(values))[:MAX_FILTERS]
        since = _day("from", args["from"], end=False) if args.get("from") else None
        until = _day("to", args["to"], end=True) if args.get("to") else None
        if since and until and since > until:
            raise BadParameter("from must not come after to.")
        raw_page = args.get("page", "1")
        if not raw_page.isdecimal() or not 1 <= int(raw_page) <= MAX_PAGE:
            raise BadParameter(f"page must be a whole number from 1 to {MAX_PAGE}.")
        sort = args.get("sort", "relevance")
        if sort not in ("relevance", "date"):
            raise BadParameter("sort must be 'relevance' or 'date'.")
        return cls(q=parsed.raw, filters=filters, page=int(raw_page), sort=sort, parsed=parsed,
                   since=since, until=until)

    @property
    def slugs(self) -> list[str]:
        """The concept filters' slugs."""
        return [slug for name in FACET_PARAMS for slug in self.filters.get(name, [])]

    @property
    def others(self) -> Filters:
        """The filters that are not concepts: kind, source, date range."""
        return Filters(kinds=self.filters.get("kind", []), sources=self.filters.get("source", []),
                       since=self.since, until=self.until)

    def canonical_args(self) -> dict[str, object] | None:
        """When the search box held filters ("therapy:x"), the same search with them as
        parameters and only the words left in q; None when it held none."""
        if not self.parsed.fields:
            return None
        return {**self.query_args(), "q": without_fields(self.q) or None}

    def query_args(self, **changes: object) -> dict[str, object]:
        """URL query for this search, with CHANGES applied (None removes a key)."""
        args: dict[str, object] = {}
        if self.q:
            args["q"] = self.q
        args.update(self.filters)
        if self.since:
            args["from"] = self.since.isoformat()
        if self.until:
            args["to"] = self.until.isoformat()
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


def search_params_or_400(args: MultiDict[str, str]) -> SearchParams:
    """The search ARGS describe, or a 400 page carrying what to fix (pages and feeds)."""
    try:
        return SearchParams.from_args(args)
    except BadParameter as exc:
        raise BadRequest(description=str(exc)) from None
