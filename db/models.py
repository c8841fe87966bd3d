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
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

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
