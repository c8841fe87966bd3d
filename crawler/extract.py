"""Main text and metadata of an article page, with trafilatura."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import trafilatura
from lxml import html as lxml_html


@dataclass
class Extracted:
    text: str
    title: str | None
    published_at: datetime | None
    language: str | None
    canonical_url: str | None


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _page_hints(html: str) -> tuple[str | None, str | None]:
    """<html lang> and <link rel=canonical>, which trafilatura does not return."""
    try:
        tree = lxml_html.fromstring(html)
    except (ValueError, lxml_html.etree.ParserError):
        return None, None
    lang = tree.get("lang") or None
    links = tree.xpath('//link[@rel="canonical"]/@href')
    return (lang.split("-")[0].lower() if lang else None), (links[0].strip() if links else None)


def extract_article(html: str, url: str) -> Extracted | None:
    """The article in HTML, or None when the page holds no article text."""
    document = trafilatura.bare_extraction(
        html, url=url, with_metadata=True, include_comments=False, include_tables=False
    )
    if document is None:
        return None
    data = document.as_dict() if hasattr(document, "as_dict") else dict(document)
    text = (data.get("text") or "").strip()
    if not text:
        return None
    lang, canonical = _page_hints(html)
    return Extracted(
        text=text,
        title=data.get("title") or None,
        published_at=_parse_date(data.get("date")),
        language=data.get("language") or lang,
        canonical_url=canonical,
    )


_BLOCKS = ("p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "tr")


def html_to_text(fragment: str) -> str:
    """Plain text of an HTML fragment from a feed: tags dropped, entities decoded, one blank
    line between blocks."""
    if "<" not in fragment and "&" not in fragment:
        return " ".join(fragment.split())
    try:
        root = lxml_html.fragment_fromstring(fragment, create_parent="div")
    except (ValueError, lxml_html.etree.ParserError):
        return " ".join(fragment.split())
    for bad in root.xpath("//script|//style"):
        bad.drop_tree()
    for element in root.iter(*_BLOCKS):
        element.tail = "\n\n" + (element.tail or "")
    text = root.text_content()
    paragraphs = (" ".join(p.split()) for p in text.split("\n\n"))
    return "\n\n".join(p for p in paragraphs if p)
