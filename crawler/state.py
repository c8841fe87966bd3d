"""What the spiders need to know of each source before they fetch it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select

from db.models import Article
from db.session import session_scope
from db.sources import due, get_source


@dataclass(frozen=True)
class SourceState:
    etag: str | None
    last_modified: str | None
    due: bool
    next_attempt: datetime | None
    last_success: datetime | None = None

    def validators(self) -> dict[str, str]:
        """Conditional-GET headers: a server that has nothing new answers 304."""
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


def source_states(database_url: str, names: list[str]) -> dict[str, SourceState]:
    states = {}
    with session_scope(database_url) as session:
        for name in names:
            source = get_source(session, name)
            if source is not None:
                states[name] = SourceState(source.etag, source.last_modified, due(source),
                                           source.next_attempt_at, source.last_crawled_at)
    return states


def stored_urls(database_url: str, urls: list[str]) -> dict[str, datetime]:
    """Which of URLS (as linked, or canonical) are already stored, with when they were fetched."""
    found: dict[str, datetime] = {}
    if not urls:
        return found
    with session_scope(database_url) as session:
        rows = session.execute(
            select(Article.url, Article.canonical_url, Article.fetched_at).where(
                or_(Article.url.in_(urls), Article.canonical_url.in_(urls))
            )
        )
        for url, canonical, fetched in rows:
            found[url] = found[canonical] = fetched
    return found
