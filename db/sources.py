"""Sources and their crawl state: conditional-GET validators, failures, backoff and health."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import Article, Source, utcnow

UNHEALTHY_AFTER = 3  # failures in a row
BACKOFF_BASE = timedelta(minutes=15)
BACKOFF_MAX = timedelta(days=1)


@dataclass(frozen=True)
class CrawlOutcome:
    """What one crawl of one source came to."""

    error: str | None = None  # None: the source answered (200 or 304)
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False
    retry_after: timedelta | None = None  # the server asked us to wait this long


@dataclass(frozen=True)
class SourceStatus:
    name: str
    type: str
    url: str
    health: str  # new | ok | failing | unhealthy
    last_success: datetime | None
    last_error: str | None
    next_attempt: datetime | None
    articles: int


def get_or_create_source(session: Session, name: str, type_: str, url: str,
                         topical: bool = False) -> Source:
    source = session.scalar(select(Source).where(Source.name == name))
    if source is None:
        source = Source(name=name, type=type_, url=url, topical=topical, consecutive_failures=0)
        session.add(source)
        session.flush()
    else:
        if source.url != url:  # a new address starts afresh
            source.etag = source.last_modified = None
        source.type, source.url, source.topical = type_, url, topical
    return source


def get_source(session: Session, name: str) -> Source | None:
    return session.scalar(select(Source).where(Source.name == name))


def backoff(failures: int) -> timedelta:
    """Exponential: 15 min after the first failure, doubling, at most a day."""
    return min(BACKOFF_BASE * 2 ** min(max(0, failures - 1), 16), BACKOFF_MAX)


def record_crawl(session: Session, name: str, outcome: CrawlOutcome) -> None:
    source = get_source(session, name)
    if source is None:
        return
    now = utcnow()
    source.last_attempt_at = now
    if outcome.error is None:
        source.last_crawled_at = now
        source.last_error = None
        source.consecutive_failures = 0
        source.next_attempt_at = None
        if not outcome.not_modified:
            source.etag, source.last_modified = outcome.etag, outcome.last_modified
        return
    source.last_error = outcome.error
    source.consecutive_failures = (source.consecutive_failures or 0) + 1
    wait = backoff(source.consecutive_failures)
    if outcome.retry_after is not None:
        wait = max(wait, outcome.retry_after)
    source.next_attempt_at = now + wait


def due(source: Source | None, now: datetime | None = None) -> bool:
    """Whether SOURCE may be crawled now (not backing off)."""
    if source is None or source.next_attempt_at is None:
        return True
    return source.next_attempt_at <= (now or utcnow())


def health(source: Source) -> str:
    if source.consecutive_failures >= UNHEALTHY_AFTER:
        return "unhealthy"
    if source.consecutive_failures:
        return "failing"
    return "ok" if source.last_crawled_at else "new"


def source_statuses(session: Session) -> list[SourceStatus]:
    counts = dict(
        session.execute(
            select(Article.source_id, func.count()).group_by(Article.source_id)
        ).all()
    )
    return [
        SourceStatus(s.name, s.type, s.url, health(s), s.last_crawled_at, s.last_error,
                     s.next_attempt_at, counts.get(s.id, 0))
        for s in session.scalars(select(Source).order_by(Source.name))
    ]


def filtered_articles(session: Session, limit: int = 200) -> list[Article]:
    """Articles kept out of the site as off-topic, most recent first."""
    from sqlalchemy.orm import selectinload

    return list(session.scalars(
        select(Article).options(selectinload(Article.source)).where(Article.filtered.is_(True))
        .order_by(Article.fetched_at.desc(), Article.id.desc()).limit(limit)
    ))
