"""Main text and metadata of an article page, with trafilatura."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

import trafilatura
from lxml import html as lxml_html
from trafilatura.utils import load_html


@dataclass
class Extracted:
    text: str
    title: str | None
    published_at: datetime | None
    language: str | None
    canonical_url: str | None
    authors: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        """What `immunofeed extract` prints."""
        return {
            "title": self.title,
            "text": self.text,
            "published": self.published_at.isoformat() if self.published_at else None,
            "authors": self.authors,
            "language": self.language,
        }


# Lines that are the page talking about itself, not the article: share prompts, newsletter
# pitches, comment counters, CMS shortcodes, "updated at" stamps. Measured on the article
# extraction benchmark (README): they lift precision from 0.961 to 0.975 and cost no recall.
_BOILERPLATE = re.compile(
    r"^\s*(like this story|share (this|it|on)\b|tell us what|sign up\b|subscribe\b|"
    r"click here|read more\b|also on \S+|related( stories| articles)?:|advertisement$|"
    r"updated( at| on)?\b.{0,30}$|\[\w+[^\]]*\]|follow us\b|get .{0,60} delivered|"
    r"\d+\s+comments?$|comments?$|.{0,80}\bnewsletter\b.{0,80}$|.{0,60}\ball rights reserved\b)",
    re.IGNORECASE,
)


def strip_boilerplate(text: str, page_title: str | None) -> str:
    """TEXT without a first line that repeats the page's title, and without boilerplate lines."""
    lines = text.split("\n")
    if lines and page_title and lines[0].strip() and lines[0].strip() in page_title:
        lines = lines[1:]
    return "\n".join(line for line in lines if not _BOILERPLATE.match(line)).strip()


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _squash(text: str) -> str:
    return " ".join(text.split())


@dataclass
class _PageHints:
    lang: str | None = None
    canonical: str | None = None
    title: str | None = None
    tree: lxml_html.HtmlElement | None = None


def _page_hints(html: str | bytes) -> _PageHints:
    """<html lang>, <link rel=canonical> and <title>, which trafilatura does not return, and the
    parsed page (decoded as trafilatura decodes it)."""
    tree = load_html(html)
    if tree is None:
        return _PageHints()
    lang = tree.get("lang") or None
    links = tree.xpath('//link[@rel="canonical"]/@href')
    title = _squash(tree.findtext(".//title") or "") or None
    return _PageHints(lang.split("-")[0].lower() if lang else None,
                      links[0].strip() if links else None, title, tree)


_NOT_A_BODY = frozenset({"blockquote", "li", "td", "figure", "aside"})


def continued_text(tree: lxml_html.HtmlElement, text: str) -> list[str]:
    """Paragraphs of an article body that the page splits into several containers.

    Many sites break the body into sibling blocks of the same class around advertisements;
    trafilatura keeps only the first. Find the block holding the extracted text's last paragraph
    and return the paragraphs of the later blocks of the same tag and class that hold at least
    one paragraph-sized text (shorter blocks are embeds and teasers)."""
    long_lines = [line for line in text.split("\n") if len(line) > 40]
    if not long_lines:
        return []
    tail = _squash(long_lines[-1])[-60:]
    container = next((p.getparent() for p in tree.iter("p") if tail in _squash(p.text_content())),
                     None)
    if container is None or container.tag in _NOT_A_BODY or not container.get("class"):
        return []
    blocks = [e for e in tree.iter(container.tag) if e.get("class") == container.get("class")]
    paragraphs: list[str] = []
    for block in blocks[blocks.index(container) + 1:]:
        texts = [_squash(p.text_content()) for p in block.iterchildren("p", "h2", "h3")]
        if any(len(t) >= 100 for t in texts):
            paragraphs.extend(t for t in texts if t)
    return paragraphs


def extract_article(html: str | bytes, url: str | None = None) -> Extracted | None:
    """The article in HTML, or None when the page holds no article text.

    trafilatura favouring precision, comments left out, the body's later blocks added when the
    page splits it, then boilerplate lines removed."""
    document = trafilatura.bare_extraction(
        html, url=url, with_metadata=True, include_comments=False, favor_precision=True
    )
    if document is None:
        return None
    data = document.as_dict() if hasattr(document, "as_dict") else dict(document)
    hints = _page_hints(html)
    text = data.get("text") or ""
    if hints.tree is not None and text:
        text = "\n".join([text, *continued_text(hints.tree, text)])
    text = strip_boilerplate(text, hints.title)
    if not text:
        return None
    authors = [a.strip() for a in (data.get("author") or "").split(";") if a.strip()]
    return Extracted(
        text=text,
        title=data.get("title") or None,
        published_at=_parse_date(data.get("date")),
        language=data.get("language") or hints.lang,
        canonical_url=hints.canonical,
        authors=authors,
    )


_BLOCKS = ("p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "tr")


def html_to_text(fragment: str) -> str:
    """Plain text of an HTML fragment from a feed: tags dropped, entities decoded, one blank
    line between blocks."""
    if "<" not in fragment and "&" not in fragment:
        return _squash(fragment)
    try:
        root = lxml_html.fragment_fromstring(fragment, create_parent="div")
    except (ValueError, lxml_html.etree.ParserError):
        return _squash(fragment)
    for bad in root.xpath("//script|//style"):
        bad.drop_tree()
    for element in root.iter(*_BLOCKS):
        element.tail = "\n\n" + (element.tail or "")
    text = root.text_content()
    paragraphs = (_squash(p) for p in text.split("\n\n"))
    return "\n\n".join(p for p in paragraphs if p)
