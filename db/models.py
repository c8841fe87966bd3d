"""SQLAlchemy 2.0 typed models. Schema changes go through Alembic (db/migrations)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from db.fts_sqlite import EVERY_ARTICLE

LABELS = ("THERAPY", "CANCER", "TARGET")
KINDS = ("news", "paper", "preprint", "trial")
IDENTIFIERS = ("doi", "pmid", "pmcid", "nct_id")


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC and always hands back timezone-aware datetimes, whatever the backend keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Source(Base):
    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    type: Mapped[str] = mapped_column(String(40))
    url: Mapped[str] = mapped_column(Text)
    last_crawled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # last success
    last_error: Mapped[str | None] = mapped_column(Text)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    topical: Mapped[bool] = mapped_column(Boolean, default=False)

    articles: Mapped[list[Article]] = relationship(back_populates="source")


class Article(Base):
    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(primary_key=True)
    canonical_url: Mapped[str] = mapped_column(String(2048), unique=True)
    url: Mapped[str] = mapped_column(String(2048))
    title: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str | None] = mapped_column(String(16))
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # first stored; fetched_at moves when a re-crawl changes the article
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    source_id: Mapped[int | None] = mapped_column(
        ForeignKey("sources.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16), default="news", index=True)
    doi: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    pmid: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    pmcid: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    nct_id: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    relevance: Mapped[float] = mapped_column(Float, default=1.0)
    filtered: Mapped[bool] = mapped_column(Boolean, default=False)
    story_id: Mapped[int | None] = mapped_column(Integer, index=True)
    # the token every article holds, then one per concept the article is tagged with ("c0 c12
    # c45"): indexed with the text on SQLite (db/fts_sqlite.py); written with the tags, and
    # the concept tokens by triggers for other writers
    tag_terms: Mapped[str] = mapped_column(Text, default=EVERY_ARTICLE, server_default="")

    source: Mapped[Source | None] = relationship(back_populates="articles")
    concepts: Mapped[list[ArticleConcept]] = relationship(
        back_populates="article", cascade="all, delete-orphan"
    )


class Concept(Base):
    __tablename__ = "concepts"

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(16), index=True)
    slug: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    synonyms: Mapped[list[str]] = mapped_column(JSON, default=list)
    xrefs: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    parent_slug: Mapped[str | None] = mapped_column(String(200))


class ArticleSignature(Base):
    __tablename__ = "article_signatures"

    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    )
    signature: Mapped[bytes] = mapped_column(LargeBinary)


class ArticleBand(Base):
    __tablename__ = "article_bands"

    band: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    key: Mapped[int] = mapped_column(BigInteger, primary_key=True, index=True)
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class ArticleConcept(Base):
    __tablename__ = "article_concepts"

    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    )
    concept_id: Mapped[int] = mapped_column(
        ForeignKey("concepts.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    mentions: Mapped[int] = mapped_column(Integer, default=1)

    article: Mapped[Article] = relationship(back_populates="concepts")
    concept: Mapped[Concept] = relationship()


SUBSCRIBER_STATUSES = ("active", "paused", "unsubscribed")
FREQUENCIES = ("daily", "weekly")


class Subscriber(Base):
    """A confirmed digest subscription (nothing is stored before the address is confirmed)."""

    __tablename__ = "subscribers"
    __table_args__ = (Index("ix_subscribers_status_frequency", "status", "frequency"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # normalised
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    frequency: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default="active")
    paused_reason: Mapped[str | None] = mapped_column(String(16))  # "reader" or "bounces"
    key: Mapped[str] = mapped_column(String(64))  # random; signed into manage/unsubscribe links
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    bounces: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class DigestDelivery(Base):
    """One digest for one subscriber and period, recorded before it is sent, so that a run
    killed at any moment and run again sends it once."""

    __tablename__ = "digest_deliveries"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "period", name="uq_delivery_subscriber_period"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    period: Mapped[str] = mapped_column(String(24))  # "2026-11-27" or "2026-W48"
    since: Mapped[datetime] = mapped_column(UTCDateTime)  # items added after this...
    until: Mapped[datetime] = mapped_column(UTCDateTime)  # ...and up to this
    status: Mapped[str] = mapped_column(String(16))  # pending, sent, empty, failed
    message_id: Mapped[str] = mapped_column(String(250))
    items: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ConfirmationSend(Base):
    """A confirmation email sent to an address (kept as a keyed hash), for the per-address
    limit."""

    __tablename__ = "confirmation_sends"

    id: Mapped[int] = mapped_column(primary_key=True)
    address_hash: Mapped[str] = mapped_column(String(64), index=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class AppSecret(Base):
    __tablename__ = "app_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class RetagRun(Base):
    """One `immunofeed tag --rebuild` over the ids up to LAST_ID, shared by every process that
    joins it until it is finished."""

    __tablename__ = "retag_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    vocabulary: Mapped[str] = mapped_column(String(64))  # digest of the vocabulary it tags with
    chunk_size: Mapped[int] = mapped_column(Integer)
    last_id: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RetagChunk(Base):
    """Ids (chunk * chunk_size, (chunk + 1) * chunk_size] of a run: claimed by one worker,
    done when all of them are re-tagged and committed."""

    __tablename__ = "retag_chunks"

    run_id: Mapped[int] = mapped_column(ForeignKey("retag_runs.id", ondelete="CASCADE"),
                                        primary_key=True)
    chunk: Mapped[int] = mapped_column(Integer, primary_key=True)
    worker: Mapped[str] = mapped_column(String(120))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    articles: Mapped[int] = mapped_column(Integer, default=0)
    changed: Mapped[int] = mapped_column(Integer, default=0)

