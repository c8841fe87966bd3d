"""Hostile input during a real crawl of a local site: a truncated gzip page, a 50 MB page,
invalid UTF-8, a page nested 10,000 levels deep, and a feed that is an XML entity bomb. Each is
an error or a fallback for its own item or source; the crawl goes on, stores the rest, and ends
in bounded time."""

from __future__ import annotations

import gzip
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from crawler.samplesite import SampleSite
from crawler.sources import SourceConfig, write_sources
from db.models import Article, ArticleConcept
from db.session import session_scope
from tests.conftest import FAST, run_cli

ARTICLE = ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
           "</head><body><article><h1>{title}</h1>{body}</article></body></html>")
PARAGRAPHS = "".join(
    f"<p>Paragraph {i}: pembrolizumab was given to patients with advanced melanoma in a phase "
    "3 trial, and the investigators reported longer progression-free survival.</p>"
    for i in range(6))
PAGES = ("good", "gzip", "big", "utf8", "deep")
def _bomb(base: str) -> bytes:
    """A billion-laughs feed: expanded, its title would be 10^8 × 100 bytes."""
    entities = "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">\n'
                       for i in range(8))
    return (f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY a "{"a" * 100}">\n{entities}]>\n'
            f'<rss version="2.0"><channel><title>&i;</title><item><title>Bomb &i;</title>'
            f"<link>{base}/hostile/bomb-item</link></item></channel></rss>").encode()


def _page(name: str) -> tuple:
    html = ARTICLE.format(title=f"The {name} page on melanoma", body=PARAGRAPHS)
    if name == "gzip":  # declared gzip, cut off half-way
        packed = gzip.compress(html.encode())
        return 200, "text/html; charset=utf-8", packed[: len(packed) // 2], {
            "Content-Encoding": "gzip", "Content-Length": str(len(packed) // 2)}
    if name == "big":
        filler = b"<p>" + b"cancer immunotherapy " * 50 + b"</p>\n"
        body = html.encode().replace(b"</article>", filler * (50 * 1024 * 1024 // len(filler)))
        return 200, "text/html; charset=utf-8", body
    if name == "utf8":  # declared UTF-8, holding bytes that are not
        broken = html.encode().replace(b"Paragraph", b"\xff\xfe\xc3(")
        return 200, "text/html; charset=utf-8", broken
    if name == "deep":
        body = "<div>" * 10_000 + PARAGRAPHS + "</div>" * 10_000
        return 200, "text/html; charset=utf-8", ARTICLE.format(
            title="The deep page on melanoma", body=body).encode()
    return 200, "text/html; charset=utf-8", html.encode()


def _feed(base: str) -> bytes:
    items = "".join(
        f"<item><title>The {name} page on melanoma</title><link>{base}/hostile/{name}</link>"
        f"<description>Pembrolizumab in melanoma: the {name} story, from the feed."
        f"</description><guid>{base}/hostile/{name}</guid></item>" for name in PAGES)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Hostile</title><link>{base}/</link>{items}</channel></rss>").encode()


def test_hostile_pages_and_feeds_are_per_item_errors(tmp_path: Path, db_url: str):
    with SampleSite() as site:
        site.routes["/hostile/feed.xml"] = lambda q: (200, "application/rss+xml", _feed(site.url))
        site.routes["/hostile/bomb.xml"] = lambda q: (200, "application/rss+xml",
                                                       _bomb(site.url))
        for name in PAGES:
            site.routes[f"/hostile/{name}"] = lambda q, name=name: _page(name)
        sources = tmp_path / "sources.toml"
        write_sources(sources, [
            SourceConfig(name="Hostile pages", type="feed", url=f"{site.url}/hostile/feed.xml"),
            SourceConfig(name="Entity bomb", type="feed", url=f"{site.url}/hostile/bomb.xml")])
        result = run_cli("crawl", "--sources", str(sources), *FAST, db_url=db_url, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    with session_scope(db_url) as session:
        stored = {a.title: a for a in session.scalars(
            select(Article).options(selectinload(Article.concepts)
                                    .selectinload(ArticleConcept.concept)))}
    # every item of the hostile feed is stored once: from its page, or from the feed's text
    assert {f"The {name} page on melanoma" for name in PAGES} <= set(stored)
    # the bomb's entities were never expanded: its one item is stored small, from its feed text
    assert [title for title in stored if title.startswith("Bomb")] == ["Bomb &i;"]
    assert len(stored) == len(PAGES) + 1
    assert all(len(a.title) + len(a.body) + len(a.summary) < 200_000 for a in stored.values())
    good = stored["The good page on melanoma"]
    assert "Paragraph 5" in good.body
    assert "the big story, from the feed" in stored["The big page on melanoma"].body
    assert "\ufffd" in stored["The utf8 page on melanoma"].body or \
        "from the feed" in stored["The utf8 page on melanoma"].body
    for name in PAGES:
        article = stored[f"The {name} page on melanoma"]
        assert any(c.concept.slug == "melanoma" for c in article.concepts), name
    assert "feed 'Entity bomb': malformed" in result.stderr  # one line names the source
    assert "larger than download max size" in result.stderr  # the 50 MB page, cut off
