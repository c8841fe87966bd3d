"""Riding out a database that goes away during a crawl (a restart, a failover, a network cut).

What the crawl has fetched is held, not dropped: the store pipeline keeps its uncommitted batch
and writes it again once the database answers; the spiders' lookups wait the same way. Every
wait is logged once when it starts and once when it ends. Past STORE_RETRY_SECONDS (default
600) of waiting the crawl gives up on the held items with one error line; the next crawl
fetches them again, since feed entries are checked against what is stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError

logger = logging.getLogger("crawler.database")

T = TypeVar("T")

# Connection refused or lost, server shutting down, SQLite locked or its disk full: errors a
# later attempt may not meet. Bad data (IntegrityError, DataError) is not among them.
UNAVAILABLE = (OperationalError, InterfaceError)
FIRST_WAIT = 0.5
LONGEST_WAIT = 10.0


class DatabaseGone(Exception):
    """The database stayed unreachable for longer than the crawl would wait."""


def describe(error: BaseException) -> str:
    orig = getattr(error, "orig", None) or error
    return " ".join(str(orig).split())[:200] or type(orig).__name__


async def until_available(attempt: Callable[[], T], what: str, give_up_after: float) -> T:
    """ATTEMPT's result, trying again with growing pauses while the database is unavailable.
    Raises DatabaseGone after GIVE_UP_AFTER seconds of failures."""
    started = time.monotonic()
    wait = FIRST_WAIT
    failures = 0
    while True:
        try:
            result = attempt()
        except UNAVAILABLE as error:
            failures += 1
            waited = time.monotonic() - started
            if failures == 1:
                logger.warning("database unavailable while %s: %s; holding on and retrying",
                               what, describe(error))
            if waited + wait > give_up_after:
                raise DatabaseGone(f"database unavailable for {waited:.0f} s while {what}: "
                                   f"{describe(error)}") from error
            await asyncio.sleep(wait)
            wait = min(wait * 2, LONGEST_WAIT)
            continue
        if failures:
            logger.warning("database back after %.1f s; %s done", time.monotonic() - started,
                           what)
        return result


def retry_seconds(settings: Any) -> float:
    return settings.getfloat("STORE_RETRY_SECONDS", 600.0)
