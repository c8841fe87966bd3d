"""The links a page repeats many times (a search page has about 160: facets, tags, results),
built as Flask's url_for builds them, without its per-call routing work: url_for took a fifth
of a search page's time. Each path is built once for each place the site is mounted; the query
string and path segments are quoted exactly as url_for quotes them (tests/test_webapp.py
compares the two)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus

from flask import current_app, request, url_for
from markupsafe import Markup, escape

from webapp.params import LABEL_PARAM, SearchParams

T = TypeVar("T")

# what werkzeug leaves unquoted in a query string and in a path segment
_QUERY_SAFE = "!$'()*,/:;?@"
_SEGMENT_SAFE = "!$&'()*+,/:;=@"


PATHS_KEPT = 1024  # paths each app keeps (a few endpoints for each place it is mounted)


def fixed_url(endpoint: str, **values: Any) -> str:
    """url_for(ENDPOINT, **VALUES), built once by each app for each place it is mounted at
    (the request's script root): for links whose values are the site's, not a reader's (a
    page's navigation, its stylesheet), the same every time."""
    kept: dict[tuple[Any, ...], str] = current_app.extensions.setdefault("links", {})
    key = (request.script_root, endpoint, *values.items())
    found = kept.get(key)
    if found is None:
        if len(kept) >= PATHS_KEPT:
            kept.clear()
        found = kept[key] = url_for(endpoint, **values)
    return found


@lru_cache(maxsize=4096)
def _parameter(name: str, value: str) -> str:
    """NAME=VALUE as urlencode writes it: a page repeats the same few (its query, the concepts'
    slugs) and so do the pages after it."""
    return f"{quote_plus(name, _QUERY_SAFE)}={quote_plus(value, _QUERY_SAFE)}"


def _query(args: Mapping[str, Any]) -> str:
    """ARGS as url_for writes them in a query string (without the "?")."""
    return "&".join(
        _parameter(str(name), str(item)) for name, value in args.items()
        if value is not None
        for item in (value if isinstance(value, (list, tuple)) else (value,))
        if item is not None)


def link(endpoint: str, args: Mapping[str, Any] | None = None, **more: Any) -> str:
    """url_for(ENDPOINT, **ARGS, **MORE) for an endpoint whose path takes no values (the
    search, the feeds, the home page): values that are None are left out, lists repeat their
    parameter."""
    query = _query({**(args or {}), **more})
    path = fixed_url(endpoint)
    return f"{path}?{query}" if query else path


def _search_links(args: Mapping[str, Any], variants: Sequence[Mapping[str, Any]]) -> list[str]:
    """search_url(ARGS) with each of VARIANTS' values in place of its names' (which ARGS holds,
    where url_for would write them): the other parameters are written once for them all."""
    names = {name for variant in variants for name in variant}
    pieces: list[str | None] = [None if name in names else _query({name: value})
                                for name, value in args.items()]
    path = fixed_url("site.search")
    links = []
    for variant in variants:
        query = "&".join(part for name, piece in zip(args, pieces, strict=True)
                         if (part := _query({name: variant[name]}) if piece is None else piece))
        links.append(f"{path}?{query}" if query else path)
    return links


def filter_links(params: SearchParams, param: str, facets: Iterable[T]
                 ) -> list[tuple[T, str]]:
    """Each of FACETS (values with a slug) with search_url(params.with_filter(PARAM, its
    slug)), the rest of the query written once for them all (a facet's link took a fifth of a
    search page's rendering)."""
    facets = list(facets)
    current = params.filters.get(param, [])
    variants = [{param: current if f.slug in current else [*current, f.slug]}  # type: ignore[attr-defined]
                for f in facets]
    args = params.query_args(**{param: "", "page": None})  # PARAM where with_filter puts it
    return list(zip(facets, _search_links(args, variants), strict=True))


def year_links(params: SearchParams, years: Iterable[T]) -> list[tuple[T, str]]:
    """Each of YEARS (values whose slug is a year) with the search's link from its first day
    to its last: search_url(params.query_args(from=..., to=..., page=None))."""
    years = list(years)
    variants = [{"from": f"{y.slug}-01-01", "to": f"{y.slug}-12-31"}  # type: ignore[attr-defined]
                for y in years]
    args = params.query_args(**{"from": "", "to": "", "page": None})
    return list(zip(years, _search_links(args, variants), strict=True))


def search_url(args: Mapping[str, Any] | None = None, **more: Any) -> str:
    """url_for("site.search", **args, **more), as link() builds it."""
    return link("site.search", args, **more)


def concept_url(kind: str, slug: str) -> str:
    """url_for("site.concept", kind=kind, slug=slug)."""
    root = fixed_url("site.concept", kind=kind, slug="_")[:-1]  # checks KIND as url_for does
    return root + quote(str(slug), safe=_SEGMENT_SAFE)


def article_url(article_id: int) -> str:
    """url_for("site.article", article_id=article_id)."""
    return f"{fixed_url('site.article', article_id=0)[:-1]}{int(article_id)}"


@lru_cache(maxsize=8192)
def _chip(mount: str, to_concept_pages: bool, label: str, slug: str, name: str) -> str:
    """One tag's item; MOUNT (where the site's search is) keeps sites mounted apart."""
    param = LABEL_PARAM[label]
    href = concept_url(param, slug) if to_concept_pages else search_url({param: slug})
    kind = escape(label.lower())
    return (f'<li><a class="chip chip-{kind}" href="{escape(href)}" title="{kind}">'
            f'{escape(name)}</a></li>')


def tag_chips(concepts: list[Any], to_concept_pages: bool = False) -> Markup:
    """The list of an article's tags, each a link to its search (or its concept page). A
    search page shows about 80, the same on every page: each one's HTML is kept (writing them
    again took a third of the page's rendering)."""
    if not concepts:
        return Markup("")
    mount = fixed_url("site.search")
    items = "".join(_chip(mount, to_concept_pages, c.label, c.slug, c.name) for c in concepts)
    return Markup(f'<ul class="chips" aria-label="Tags">{items}</ul>')
