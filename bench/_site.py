"""A synthetic news site for the benchmarks: N distinct articles spread over feeds, served on
127.0.0.1 by the sample site's server."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape

from crawler.samplesite import SampleSite, render

WORDS = ("patients trial response survival tumour cells therapy dose cohort median months "
         "analysis safety biopsy infusion relapse remission toxicity endpoint phase arm "
         "investigators enrolled randomised placebo hazard ratio progression follow-up").split()


def build(articles: int, feeds: int, seed: int = 7) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """(feed path -> RSS, page path -> HTML)."""
    rng = random.Random(seed)
    stories = render.stories()
    start = datetime(2026, 11, 1, tzinfo=UTC)
    pages: dict[str, bytes] = {}
    items: dict[int, list[str]] = {f: [] for f in range(feeds)}
    for i in range(articles):
        story = stories[i % len(stories)]
        filler = [" ".join(rng.choice(WORDS) for _ in range(60)).capitalize() + "."
                  for _ in range(4)]
        paragraphs = [story.paragraphs[0], *filler, *story.paragraphs[1:2]]
        title = f"{story.title} — report {i}"
        path = f"/bench/articles/{i}"
        body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
        pages[path] = (
            f"<!doctype html><html lang='en'><head><title>{escape(title)}</title></head><body>"
            f"<nav><a href='/'>Home</a> <a href='/about'>About</a></nav><article>"
            f"<h1>{escape(title)}</h1>{body}</article><footer>Bench site</footer></body></html>"
        ).encode()
        published = format_datetime(start + timedelta(minutes=i))
        items[i % feeds].append(
            f"<item><title>{escape(title)}</title><link>{{base}}{path}</link>"
            f"<guid>{path}</guid><pubDate>{published}</pubDate>"
            f"<description>{escape(story.teaser)}</description></item>")
    feeds_xml = {
        f"/bench/feeds/{f}.rss": (
            "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
            f"<title>Bench feed {f}</title><link>{{base}}/</link><description>bench</description>"
            + "".join(entries) + "</channel></rss>").encode()
        for f, entries in items.items()
    }
    return feeds_xml, pages


def serve(articles: int, feeds: int) -> tuple[SampleSite, list[str]]:
    feeds_xml, pages = build(articles, feeds)
    site = SampleSite()
    base = site.url.encode()
    for path, body in {**feeds_xml, **pages}.items():
        content_type = "application/rss+xml" if path.endswith(".rss") else "text/html"
        data = body.replace(b"{base}", base)
        site.routes[path] = lambda query, data=data, kind=content_type: (200, kind, data)
    return site.start(), [site.url + path for path in feeds_xml]
