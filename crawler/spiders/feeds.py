"""The feed spider: RSS, Atom and RDF feeds, each entry's page fetched for its full text."""

from __future__ import annotations

import calendar
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import feedparser
import scrapy
from scrapy.http import Response, TextResponse
from twisted.python.failure import Failure

from crawler.analysis import extract_and_analyse, pool_for
from crawler.extract import html_to_text
from crawler.items import ArticleItem
from crawler.sources import SourceConfig
from crawler.spiders.base import SourceSpider, failure_reason, header
from crawler.state import SourceState
from crawler.urls import canonical_url
from db.sources import CrawlOutcome


def _entry_time(entry: Any) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = entry.get(key)
        if value:
            return datetime.fromtimestamp(calendar.timegm(value), UTC)
    return None


def _entry_link(response: Response, entry: Any) -> str:
    """The entry's page, absolute: its link, or its id when that is a web address."""
    link = entry.get("link") or ""
    if not link and str(entry.get("id", "")).startswith(("http://", "https://")):
        link = entry["id"]
    return response.urljoin(link) if link else ""


def _entry_text(entry: Any) -> str:
    for content in entry.get("content") or []:
        if content.get("value"):
            return html_to_text(content["value"])
    return html_to_text(entry.get("summary") or entry.get("description") or "")


class FeedSpider(SourceSpider):
    name = "feed"
    source_type = "feed"

    def first_requests(self, source: SourceConfig,
                       state: SourceState | None) -> Iterable[scrapy.Request]:
        yield scrapy.Request(
            source.url,
            callback=self.parse_feed,
            errback=self.request_failed,
            cb_kwargs={"source": source},
            headers=state.validators() if state else {},
            meta={"handle_httpstatus_list": [304]},
            dont_filter=True,
        )

    async def parse_feed(self, response: Response, source: SourceConfig) -> AsyncIterator[Any]:
        if response.status == 304:
            self.source_succeeded(source, CrawlOutcome(not_modified=True))
            self.crawler.stats.inc_value("immunofeed/feeds_not_modified")
            return
        self.source_succeeded(source, CrawlOutcome(
            etag=header(response, "ETag"), last_modified=header(response, "Last-Modified")
        ))
        async for found in self._entries(response, source):
            yield found

    async def _entries(self, response: Response, source: SourceConfig) -> AsyncIterator[Any]:
        headers = {"content-location": response.url}
        content_type = response.headers.get("Content-Type")
        if content_type:
            headers["content-type"] = content_type.decode("latin-1")
        parsed = feedparser.parse(response.body, response_headers=headers)
        if not parsed.entries:
            if parsed.bozo or not parsed.version:
                problem = parsed.get("bozo_exception") or "no feed found"
                self.source_failed(source, f"not a readable feed at {response.url} ({problem})")
            else:
                self.logger.info("feed %r: no entries", source.name)
            return
        if parsed.bozo:
            self.logger.warning(
                "feed %r: malformed but readable (%s)", source.name, parsed.bozo_exception
            )
        self.crawler.stats.inc_value("immunofeed/feeds_read")
        links = [_entry_link(response, e) for e in parsed.entries]
        canonical = [canonical_url(link) if link else "" for link in links]
        # The database is the crawl's durable record: an entry already stored is not fetched
        # again, and one a killed crawl never stored is fetched on the next run.
        known = await self.stored(source, [u for u in links + canonical if u])
        if known is None:
            return
        for entry, link, key in zip(parsed.entries, links, canonical, strict=True):
            if link and (link in known or key in known):
                self.crawler.stats.inc_value("immunofeed/articles_known")
                continue
            for found in self._entry(source, entry, link, parsed.feed.get("language")):
                yield found

    def _entry(self, source: SourceConfig, entry: Any, link: str,
               feed_language: str | None) -> Iterator[Any]:
        title = html_to_text(entry.get("title") or "")
        if not link or not title:
            self.logger.warning("feed %r: skipped an entry without a link or title", source.name)
            self.crawler.stats.inc_value("immunofeed/entries_skipped")
            return
        item = ArticleItem(
            url=link,
            title=title,
            body=_entry_text(entry),
            source=source.name,
            published_at=_entry_time(entry),
            language=(feed_language or "").split("-")[0].lower() or None,
            topical=source.topical,
        )
        if not source.fetch_pages:
            yield item
            return
        yield scrapy.Request(
            item.url,
            callback=self.parse_article,
            errback=self.article_failed,
            cb_kwargs={"from_feed": item},
            dont_filter=True,  # dedupe against the database above, which survives a kill
        )

    async def parse_article(self, response: Response, from_feed: ArticleItem
                            ) -> AsyncIterator[ArticleItem]:
        extracted = None
        if isinstance(response, TextResponse):
            # the text is tagged in the same trip to a worker (the pipelines use that when
            # the item still has the text analysed)
            extracted, from_feed.analysed = await pool_for(self.settings).run(
                extract_and_analyse, response.text, response.url, from_feed.title,
                from_feed.body, from_feed.kind)
            # the worker chose the body: the page's text, or the feed's when that is longer
            from_feed.body = from_feed.analysed.body
        if extracted is None:
            self.logger.info("article %s: no article text found; using the feed's", response.url)
            yield from_feed
            return
        from_feed.url = response.url
        if extracted.canonical_url:
            canonical = response.urljoin(extracted.canonical_url)
            if canonical.startswith(("http://", "https://")):
                from_feed.canonical_url = canonical
        from_feed.published_at = from_feed.published_at or extracted.published_at
        from_feed.language = extracted.language or from_feed.language
        yield from_feed

    def article_failed(self, failure: Failure) -> Iterator[ArticleItem]:
        item: ArticleItem = failure.request.cb_kwargs["from_feed"]
        self.logger.warning(
            "article %s: %s; using the feed's text", failure.request.url, failure_reason(failure)
        )
        self.crawler.stats.inc_value("immunofeed/pages_fell_back")
        yield item
