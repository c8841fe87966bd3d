"""Downloader middleware: wait as long as a server asks (Retry-After) before trying again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from scrapy.http import Request, Response

RETRY_AFTER_CODES = (429, 503)


def retry_after(response: Response) -> timedelta | None:
    """The Retry-After header of RESPONSE (seconds or an HTTP date) as a wait, if any."""
    if response.status not in RETRY_AFTER_CODES:
        return None
    value = (response.headers.get("Retry-After") or b"").decode("latin-1").strip()
    if not value:
        return None
    if value.isdecimal():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(timedelta(0), when - datetime.now(UTC))


class RetryAfterMiddleware:
    """A 429 or 503 with a short Retry-After is retried after that wait (up to
    RETRY_AFTER_MAX_WAIT seconds, RETRY_AFTER_TIMES times); a longer one is given up for this
    crawl and the source is not tried again before the time the server named."""

    def __init__(self, max_wait: float, times: int):
        self.max_wait = max_wait
        self.times = times

    @classmethod
    def from_crawler(cls, crawler: Any) -> RetryAfterMiddleware:
        return cls(crawler.settings.getfloat("RETRY_AFTER_MAX_WAIT", 30.0),
                   crawler.settings.getint("RETRY_AFTER_TIMES", 2))

    async def process_response(self, request: Request, response: Response) -> Any:
        wait = retry_after(response)
        if wait is None:
            return response
        tries = request.meta.get("retry_after_tries", 0)
        if tries >= self.times or wait.total_seconds() > self.max_wait:
            request.meta["dont_retry"] = True  # leave it to the source's backoff
            return response
        await asyncio.sleep(wait.total_seconds())
        retry = request.replace(dont_filter=True)
        retry.meta["retry_after_tries"] = tries + 1
        return retry
