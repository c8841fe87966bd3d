"""News sites without feeds: sitemap.xml, sitemap indexes and Google News sitemaps.

Lastmod-aware: a page already stored is fetched again only when the sitemap says it changed
since; a child sitemap is read only when it changed since the last successful crawl.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any

import scrapy
from scrapy.http import Response, TextResponse
from twisted.python.failure import Failure

from crawler.analysis import extract_and_analyse, pool_for
from crawler.items import ArticleItem
from crawler.sitemaps import SitemapError, parse_sitemap
from crawler.sources import SourceConfig
from crawler.spiders.base import SourceSpider, failure_reason, header
from crawler.state import SourceState
from crawler.urls import canonical_url
from db.sources import CrawlOutcome

MAX_DEPTH = 2  # an index of indexes, at most


class SitemapSpider(SourceSpider):
    name = "sitemap"
    source_type = "sitemap"

    def first_requests(self, source: SourceConfig,
                       state: SourceState | None) -> Iterable[scrapy.Request]:
        yield self._sitemap_request(source, source.url, state.validators() if state else {},
                                    depth=0, since=state.last_success if state else None)

    def _sitemap_request(self, source: SourceConfig, url: str, headers: dict[str, str],
                         depth: int, since: datetime | None) -> scrapy.Request:
        return scrapy.Request(url, callback=self.parse_sitemap, errback=self.request_failed,
                              headers=headers, meta={"handle_httpstatus_list": [304]},
                              cb_kwargs={"source": source, "depth": depth, "since": since},
                              dont_filter=True)

    async def parse_sitemap(self, response: Response, source: SourceConfig, depth: int,
                            since: datetime | None) -> AsyncIterator[Any]:
        if response.status == 304:
            self.source_succeeded(source, CrawlOutcome(not_modified=True))
            self.crawler.stats.inc_value("immunofeed/feeds_not_modified")
            return
        try:
            sitemap = parse_sitemap(response.body)
        except SitemapError as exc:
            self.source_failed(source, f"{exc} at {response.url}")
            return
        if depth == 0:
            self.source_succeeded(source, CrawlOutcome(
                etag=header(response, "ETag"), last_modified=header(response, "Last-Modified")))
        if sitemap.is_index:
            if depth >= MAX_DEPTH:
                self.logger.warning("sitemap %r: index nested too deep at %s", source.name,
                                    response.url)
                return
            for entry in sitemap.entries:
                if since and entry.lastmod and entry.lastmod <= since:
                    continue  # that part of the site has not changed since the last crawl
                yield self._sitemap_request(source, response.urljoin(entry.loc), {},
                                            depth + 1, since)
            return
        pages = [response.urljoin(e.loc) for e in sitemap.entries]
        known = await self.stored(source, pages + [canonical_url(p) for p in pages])
        if known is None:
            return
        for entry, page in zip(sitemap.entries, pages, strict=True):
            fetched = known.get(page) or known.get(canonical_url(page))
            if fetched and not (entry.lastmod and entry.lastmod > fetched):
                self.crawler.stats.inc_value("immunofeed/articles_known")
                continue
            yield scrapy.Request(page, callback=self.parse_page, errback=self.page_failed,
                                 cb_kwargs={"source": source, "entry": entry},
                                 dont_filter=True)

    async def parse_page(self, response: Response, source: SourceConfig, entry: Any
                         ) -> AsyncIterator[ArticleItem]:
        found = analysed = None
        if isinstance(response, TextResponse):
            # extracted and tagged in one trip to a worker (the pipelines use the analysis
            # while the item holds the text analysed)
            found, analysed = await pool_for(self.settings).run(
                extract_and_analyse, response.text, response.url, entry.title or "", "", "news")
        if found is None or analysed is None or not analysed.title:
            self.logger.warning("sitemap %r: no article at %s", source.name, response.url)
            return
        canonical = response.urljoin(found.canonical_url) if found.canonical_url else ""
        yield ArticleItem(
            url=response.url,
            canonical_url=canonical if canonical.startswith(("http://", "https://")) else "",
            title=analysed.title,
            body=analysed.body,
            source=source.name,
            published_at=found.published_at or entry.lastmod,
            language=found.language or entry.language,
            topical=source.topical,
            analysed=analysed,
        )

    def page_failed(self, failure: Failure) -> None:
        self.logger.warning("sitemap %r: %s fetching %s", failure.request.cb_kwargs["source"].name,
                            failure_reason(failure), failure.request.url)
