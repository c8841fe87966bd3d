"""Answers kept per state of the article database, so that a search, feed or concept page asked
for again is sent without being worked out again.

Readers ask for the same few things over and over: the home page, the searches of the day, the
feeds a feed reader polls every few minutes, the concept pages of popular drugs. Each web process
keeps the bodies of its recent answers to such GET requests, keyed by the full URL (host
included: feeds hold absolute links), in a least-recently-used store bounded in bytes
(IMMUNOFEED_PAGE_CACHE_MB).

An answer is kept only for the state of the listing index (db.listing) it was made from: the
index takes in every stored, deleted, re-dated, merged or re-tagged article and every change of
the concepts before any request reads it, and a new state empties the store. So a new article
is on every page the moment the index sees it. What the index does not follow (an article's text
edited in place, a source renamed) shows within FRESH_FOR seconds, the longest any answer is
kept.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from cachetools import TTLCache
from flask import Flask, current_app, request

from db import listing

FRESH_FOR = 60.0  # seconds an answer is kept at most
EXTENSION = "immunofeed_page_cache"


@dataclass(frozen=True)
class Kept:
    body: bytes
    status: int
    headers: list[tuple[str, str]]


class PageCache:
    """One process's answers for one database, all made from the same state of its index."""

    def __init__(self, max_bytes: int, fresh_for: float = FRESH_FOR) -> None:
        self._lock = threading.Lock()
        self._answers: TTLCache[tuple[str, str], Kept] = TTLCache(
            maxsize=max_bytes, ttl=fresh_for, getsizeof=lambda kept: len(kept.body) + 512)
        self._state: object | None = None
        self.max_bytes = max_bytes
        self.hits = self.misses = 0

    def _at(self, state: object) -> None:
        if state is not self._state:  # the data changed: nothing kept is current
            self._answers.clear()
            self._state = state

    def get(self, state: object, key: tuple[str, str]) -> Kept | None:
        with self._lock:
            self._at(state)
            kept = self._answers.get(key)
            if kept is None:
                self.misses += 1
            else:
                self.hits += 1
            return kept

    def put(self, state: object, key: tuple[str, str], kept: Kept) -> None:
        with self._lock:
            self._at(state)
            if len(kept.body) + 512 <= self.max_bytes:
                self._answers[key] = kept


def init_app(app: Flask) -> None:
    megabytes = app.config["PAGE_CACHE_MB"]
    try:
        size = float(megabytes)
    except (TypeError, ValueError):
        size = -1.0
    if not size >= 0:
        from db.settings import SettingError

        raise SettingError(
            f"IMMUNOFEED_PAGE_CACHE_MB must be a number of megabytes (0: off), not {megabytes!r}")
    if size > 0:
        app.extensions[EXTENSION] = PageCache(
            int(size * 1024 * 1024), float(app.config.get("PAGE_CACHE_SECONDS", FRESH_FOR)))


def cached(view: Callable[..., Any]) -> Callable[..., Any]:
    """VIEW's successful answers kept and sent again while the data stays as it was."""

    @wraps(view)
    def answer(*args: Any, **kwargs: Any) -> Any:
        from webapp.app import db_session

        cache: PageCache | None = current_app.extensions.get(EXTENSION)
        index = listing.listing_for(db_session()) if cache is not None else None
        if cache is None or index is None or request.method not in ("GET", "HEAD"):
            return view(*args, **kwargs)
        state = index[0]  # each state of the index is a new object, never changed
        key = (request.host_url, request.full_path)
        kept = cache.get(state, key)
        if kept is not None:
            response = current_app.response_class(kept.body, status=kept.status,
                                                  headers=kept.headers)
            response.headers["X-Cache"] = "hit"
            return response.make_conditional(request)
        response = current_app.make_response(view(*args, **kwargs))
        if (response.status_code == 200 and not response.is_streamed
                and "Set-Cookie" not in response.headers):
            cache.put(state, key, Kept(response.get_data(), response.status_code,
                                       list(response.headers.items())))
        response.headers["X-Cache"] = "miss"
        return response

    return answer

