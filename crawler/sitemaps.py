"""sitemap.xml, sitemap indexes and Google News sitemaps, parsed safely into entries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from lxml import etree

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, recover=True,
                          remove_comments=True, huge_tree=False)


class SitemapError(ValueError):
    pass


@dataclass(frozen=True)
class SitemapEntry:
    loc: str
    lastmod: datetime | None = None
    title: str | None = None  # from a Google News sitemap
    language: str | None = None


@dataclass(frozen=True)
class Sitemap:
    is_index: bool
    entries: list[SitemapEntry]


def parse_w3c_date(value: str | None) -> datetime | None:
    """W3C datetime as sitemaps use it: "2026-10-02", "2026-10-02T08:30:00+01:00", "…Z"."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _local(tag: object) -> str:
    return tag.split("}", 1)[-1] if isinstance(tag, str) else ""


def _child(element: etree._Element, name: str) -> etree._Element | None:
    return next((c for c in element if _local(c.tag) == name), None)


def _text(element: etree._Element | None, name: str) -> str | None:
    found = _child(element, name) if element is not None else None
    return (found.text or "").strip() or None if found is not None else None


def parse_sitemap(data: bytes) -> Sitemap:
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise SitemapError(f"not a sitemap: {exc}") from None
    if root is None or _local(root.tag) not in ("urlset", "sitemapindex"):
        raise SitemapError("not a sitemap: no <urlset> or <sitemapindex>")
    is_index = _local(root.tag) == "sitemapindex"
    entries = []
    for node in root:
        if _local(node.tag) not in ("url", "sitemap"):
            continue
        loc = _text(node, "loc")
        if not loc:
            continue
        news = _child(node, "news")
        publication = _child(news, "publication") if news is not None else None
        lastmod = parse_w3c_date(_text(node, "lastmod")) or parse_w3c_date(
            _text(news, "publication_date"))
        entries.append(SitemapEntry(loc=loc, lastmod=lastmod, title=_text(news, "title"),
                                    language=_text(publication, "language")))
    return Sitemap(is_index, entries)
