"""What every source spider shares: its sources from the sources file, their stored state
(validators, backoff), and one outcome per source for the store pipeline to record."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import datetime, timedelta
from typing import Any

import scrapy
from scrapy import signals
from scrapy.http import Response
from twisted.python.failure import Failure

from crawler.dbwait import DatabaseGone, retry_seconds, until_available
from crawler.middlewares import retry_after
from crawler.sources import SourceConfig, load_sources
from crawler.state import SourceState, source_states, stored_urls
from db.sources import CrawlOutcome


def failure_reason(failure: Failure) -> str:
    response = getattr(failure.value, "response", None)
    if response is not None:
        return f"HTTP {response.status}"
    return failure.getErrorMessage() or failure.type.__name__


def header(response: Response, name: str) -> str | None:
    value = response.headers.get(name)
    return value.decode("latin-1") if value else None


class SourceSpider(scrapy.Spider):
    source_type = ""  # which [[sources]] this spider crawls

    def __init__(self, sources: list[SourceConfig] | None = None,
                 sources_file: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        chosen = sources if sources is not None else load_sources(sources_file)
        self.sources = [s for s in chosen if s.type == self.source_type]
        self.outcomes: dict[str, CrawlOutcome] = {}
        self.skipped: list[str] = []

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> SourceSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider._item_failed, signal=signals.item_error)
        return spider

    def _item_failed(self, item: Any, response: Any, spider: Any, failure: Failure) -> None:
        self.crawler.stats.inc_value("immunofeed/items_failed")

    @property
    def source_errors(self) -> dict[str, str]:
        return {name: o.error for name, o in self.outcomes.items() if o.error}

    async def start(self) -> AsyncIterator[scrapy.Request]:
        names = [s.name for s in self.sources]
        states = await until_available(
            lambda: source_states(self.settings.get("IMMUNOFEED_DATABASE_URL"), names),
            "reading the sources' state", retry_seconds(self.settings))
        for source in self.sources:
            state = states.get(source.name)
            if state is not None and not state.due:
                self.skipped.append(source.name)
                self.logger.info("%s %r: backing off until %s", self.name, source.name,
                                 state.next_attempt)
                continue
            for request in self.first_requests(source, state):
                yield request

    async def stored(self, source: SourceConfig, urls: list[str]) -> dict[str, datetime] | None:
        """Which of URLS are stored already (crawler.state.stored_urls), waiting for the
        database if it is away; None, with the source marked failed, if it stays away."""
        try:
            return await until_available(
                lambda: stored_urls(self.settings.get("IMMUNOFEED_DATABASE_URL"), urls),
                f"checking {source.name!r}'s entries against the database",
                retry_seconds(self.settings))
        except DatabaseGone as gone:
            self.source_failed(source, str(gone))
            return None

    def first_requests(self, source: SourceConfig,
                       state: SourceState | None) -> Iterable[scrapy.Request]:
        raise NotImplementedError

    def source_failed(self, source: SourceConfig, message: str,
                      retry_after: timedelta | None = None) -> None:
        self.outcomes[source.name] = CrawlOutcome(error=message, retry_after=retry_after)
        self.crawler.stats.inc_value("immunofeed/feeds_failed")
        self.logger.error("%s %r: %s", self.name, source.name, message)

    def source_succeeded(self, source: SourceConfig, outcome: CrawlOutcome | None = None) -> None:
        if self.outcomes.get(source.name, CrawlOutcome()).error is None:
            self.outcomes[source.name] = outcome or CrawlOutcome()

    def request_failed(self, failure: Failure) -> None:
        """Errback for a source's own requests (not its article pages)."""
        source = failure.request.cb_kwargs["source"]
        response = getattr(failure.value, "response", None)
        wait = retry_after(response) if response is not None else None
        self.source_failed(source, f"{failure_reason(failure)} fetching {failure.request.url}",
                           wait)
