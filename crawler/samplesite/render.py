"""Pages and feeds of the sample site, rendered from articles.toml."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from functools import lru_cache
from html import escape
from pathlib import Path
from xml.etree import ElementTree as ET

ARTICLES = Path(__file__).parent / "articles.toml"
SITE_NAME = "The Oncology Wire"
ATOM = "http://www.w3.org/2005/Atom"
FEEDS = {"news": "news.rss", "research": "research.atom", "briefs": "briefs.rss",
         "partners": "partners.rss"}


@dataclass(frozen=True)
class Story:
    slug: str
    feed: str
    published: datetime
    lang: str
    author: str
    title: str
    teaser: str
    body: str
    page: bool = True
    path: str = ""

    @property
    def page_path(self) -> str:
        return self.path or f"/articles/{self.slug}"

    @property
    def paragraphs(self) -> list[str]:
        return [" ".join(p.split()) for p in self.body.strip().split("\n\n") if p.strip()]


@lru_cache(maxsize=1)
def stories() -> tuple[Story, ...]:
    data = tomllib.loads(ARTICLES.read_text(encoding="utf-8"))
    return tuple(Story(**entry) for entry in data["articles"])


def _link(base: str, story: Story) -> str:
    # Feeds link with tracking parameters, as real ones do; the page's rel=canonical does not.
    return f"{base}{story.page_path}?utm_source=rss&utm_medium=feed"


def _body_html(story: Story) -> str:
    return "".join(f"<p>{escape(p)}</p>" for p in story.paragraphs)


def rss(base: str, feed: str) -> bytes:
    root = ET.Element("rss", version="2.0")
    channel = ET.SubElement(root, "channel")
    ET.SubElement(channel, "title").text = f"{SITE_NAME}: {feed}"
    ET.SubElement(channel, "link").text = base + "/"
    ET.SubElement(channel, "description").text = f"{feed.title()} from {SITE_NAME}"
    for story in stories():
        if story.feed != feed:
            continue
        item = ET.SubElement(channel, "item")
        ET.SubElement(item, "title").text = story.title
        ET.SubElement(item, "link").text = _link(base, story)
        ET.SubElement(item, "guid", isPermaLink="false").text = f"oncology-wire:{story.slug}"
        ET.SubElement(item, "pubDate").text = format_datetime(story.published)
        ET.SubElement(item, "author").text = f"newsroom@oncology-wire.test ({story.author})"
        ET.SubElement(item, "description").text = story.teaser
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def atom(base: str, feed: str) -> bytes:
    ET.register_namespace("", ATOM)
    root = ET.Element(f"{{{ATOM}}}feed")
    ET.SubElement(root, f"{{{ATOM}}}title").text = f"{SITE_NAME}: {feed}"
    ET.SubElement(root, f"{{{ATOM}}}id").text = f"tag:oncology-wire.test,2026:{feed}"
    ET.SubElement(root, f"{{{ATOM}}}link", href=f"{base}/feeds/{FEEDS[feed]}", rel="self")
    chosen = [s for s in stories() if s.feed == feed]
    ET.SubElement(root, f"{{{ATOM}}}updated").text = max(s.published for s in chosen).isoformat()
    for story in chosen:
        entry = ET.SubElement(root, f"{{{ATOM}}}entry")
        ET.SubElement(entry, f"{{{ATOM}}}title").text = story.title
        ET.SubElement(entry, f"{{{ATOM}}}link", href=_link(base, story), rel="alternate")
        ET.SubElement(entry, f"{{{ATOM}}}id").text = f"tag:oncology-wire.test,2026:{story.slug}"
        ET.SubElement(entry, f"{{{ATOM}}}published").text = story.published.isoformat()
        ET.SubElement(entry, f"{{{ATOM}}}updated").text = story.published.isoformat()
        author = ET.SubElement(entry, f"{{{ATOM}}}author")
        ET.SubElement(author, f"{{{ATOM}}}name").text = story.author
        ET.SubElement(entry, f"{{{ATOM}}}summary").text = story.teaser
        ET.SubElement(entry, f"{{{ATOM}}}content", type="html").text = _body_html(story)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def feed(base: str, name: str) -> bytes:
    return atom(base, name) if FEEDS[name].endswith(".atom") else rss(base, name)


SITEMAP = "http://www.sitemaps.org/schemas/sitemap/0.9"
NEWS = "http://www.google.com/schemas/sitemap-news/0.9"
SITEMAPS = {"news": ("news", "briefs"), "research": ("research",)}


def sitemap_index(base: str) -> bytes:
    ET.register_namespace("", SITEMAP)
    root = ET.Element(f"{{{SITEMAP}}}sitemapindex")
    for name, feeds in SITEMAPS.items():
        node = ET.SubElement(root, f"{{{SITEMAP}}}sitemap")
        ET.SubElement(node, f"{{{SITEMAP}}}loc").text = f"{base}/sitemaps/{name}.xml"
        newest = max(s.published for s in stories() if s.feed in feeds)
        ET.SubElement(node, f"{{{SITEMAP}}}lastmod").text = newest.isoformat()
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def sitemap(base: str, name: str) -> bytes:
    """"news" is a Google News sitemap, "research" a plain one."""
    ET.register_namespace("", SITEMAP)
    ET.register_namespace("news", NEWS)
    root = ET.Element(f"{{{SITEMAP}}}urlset")
    for story in stories():
        if story.feed not in SITEMAPS[name] or not story.page or story.path:
            continue
        url = ET.SubElement(root, f"{{{SITEMAP}}}url")
        ET.SubElement(url, f"{{{SITEMAP}}}loc").text = base + story.page_path
        ET.SubElement(url, f"{{{SITEMAP}}}lastmod").text = story.published.isoformat()
        if name == "news":
            news = ET.SubElement(url, f"{{{NEWS}}}news")
            publication = ET.SubElement(news, f"{{{NEWS}}}publication")
            ET.SubElement(publication, f"{{{NEWS}}}name").text = SITE_NAME
            ET.SubElement(publication, f"{{{NEWS}}}language").text = story.lang
            ET.SubElement(news, f"{{{NEWS}}}publication_date").text = story.published.isoformat()
            ET.SubElement(news, f"{{{NEWS}}}title").text = story.title
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _chrome(title: str, lang: str, head: str, main: str) -> str:
    others = "".join(
        f'<li><a href="{escape(s.page_path)}">{escape(s.title)}</a></li>' for s in stories()[:6]
    )
    return f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{escape(title)} | {SITE_NAME}</title>
{head}</head><body>
<header><a href="/">{SITE_NAME}</a>
<nav><a href="/">Home</a> <a href="/feeds/news.rss">News</a> <a href="/feeds/research.atom">Research</a>
<a href="/feeds/briefs.rss">Briefs</a> <a href="/about">About</a> <a href="/members/">Members</a></nav></header>
<div class="cookie-banner">We use cookies to understand how our site is read. <button>Accept</button></div>
<main>{main}</main>
<aside><h2>Most read</h2><ul>{others}</ul>
<div class="newsletter"><h2>Get the Wire every morning</h2><p>Sign up for our free newsletter.</p>
<form><input type="email" placeholder="you@example.org"><button>Subscribe</button></form></div></aside>
<footer><p>Sample site for the ImmunoFeed demo. Stories are illustrative: institutions, people and
figures are invented.</p><p>&copy; 2026 {SITE_NAME}. All rights reserved.</p></footer>
</body></html>"""


def article_page(base: str, story: Story) -> str:
    head = (
        f'<link rel="canonical" href="{base}{story.page_path}">'
        f'<meta name="description" content="{escape(story.teaser)}">'
        f'<meta property="article:published_time" content="{story.published.isoformat()}">'
        f'<meta name="author" content="{escape(story.author)}">'
    )
    main = (
        f"<article><h1>{escape(story.title)}</h1>"
        f'<p class="byline">By {escape(story.author)} · <time datetime="{story.published.isoformat()}">'
        f"{story.published:%d %B %Y}</time></p>"
        f'<p class="standfirst">{escape(story.teaser)}</p>{_body_html(story)}'
        f'<p class="share">Share this story: <a href="#">Email</a> <a href="#">Print</a></p></article>'
    )
    return _chrome(story.title, story.lang, head, main)


def index_page() -> str:
    items = "".join(
        f'<li><a href="{escape(s.page_path)}">{escape(s.title)}</a></li>' for s in stories()
    )
    return _chrome("Home", "en", "", f"<h1>Latest</h1><ul>{items}</ul>")
