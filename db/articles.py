"""Articles: the one write path (upsert by canonical URL) and the reads the site needs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from db.concepts import concept_ids_by_slug
from db.models import Article, ArticleConcept, Source, utcnow

UpsertResult = Literal["new", "updated", "unchanged"]


@dataclass
class ArticleData:
    canonical_url: str
    url: str
    title: str
    body: str = ""
    summary: str = ""
    language: str | None = None
    published_at: datetime | None = None
    source_name: str | None = None
    # concept slug -> mention count; concepts must already be stored (db.concepts.sync_concepts)
    mentions: Mapping[str, int] = field(default_factory=dict)


def get_or_create_source(session: Session, name: str, type_: str, url: str) -> Source:
    source = session.scalar(select(Source).where(Source.name == name))
    if source is None:
        source = Source(name=name, type=type_, url=url)
        session.add(source)
        session.flush()
    else:
        source.type, source.url = type_, url
    return source


def _content_fields(data: ArticleData) -> dict[str, object]:
    return {
        "url": data.url,
        "title": data.title,
        "body": data.body,
        "summary": data.summary,
        "language": data.language,
        "published_at": data.published_at,
    }


def upsert_article(session: Session, data: ArticleData) -> tuple[UpsertResult, int]:
    """Store DATA once per canonical URL: insert it, update it if it changed, or leave it."""
    source_id = None
    if data.source_name:
        source_id = session.scalar(select(Source.id).where(Source.name == data.source_name))
    concept_ids = concept_ids_by_slug(session, data.mentions)
    fields = _content_fields(data)

    article = session.scalar(select(Article).where(Article.canonical_url == data.canonical_url))
    if article is None:
        article = Article(canonical_url=data.canonical_url, source_id=source_id, **fields)
        try:
            with session.begin_nested():
                session.add(article)
                session.flush()
        except IntegrityError:  # another writer stored it first: fall through to an update
            article = session.scalar(
                select(Article).where(Article.canonical_url == data.canonical_url)
            )
            assert article is not None
        else:
            _set_mentions(session, article.id, data.mentions, concept_ids)
            return "new", article.id

    changed = any(getattr(article, name) != value for name, value in fields.items())
    old_mentions = {
        concept_id: count
        for concept_id, count in session.execute(
            select(ArticleConcept.concept_id, ArticleConcept.mentions).where(
                ArticleConcept.article_id == article.id
            )
        )
    }
    new_mentions = {concept_ids[s]: n for s, n in data.mentions.items() if s in concept_ids}
    if not changed and old_mentions == new_mentions:
        return "unchanged", article.id
    for name, value in fields.items():
        setattr(article, name, value)
    article.fetched_at = utcnow()
    if source_id is not None:
        article.source_id = source_id
    _set_mentions(session, article.id, data.mentions, concept_ids)
    return "updated", article.id


def _set_mentions(
    session: Session, article_id: int, mentions: Mapping[str, int], concept_ids: Mapping[str, int]
) -> None:
    session.execute(delete(ArticleConcept).where(ArticleConcept.article_id == article_id))
    session.add_all(
        ArticleConcept(article_id=article_id, concept_id=concept_ids[slug], mentions=count)
        for slug, count in mentions.items()
        if slug in concept_ids
    )
    session.flush()


def get_article(session: Session, article_id: int) -> Article | None:
    return session.scalar(
        select(Article)
        .options(selectinload(Article.source), selectinload(Article.concepts))
        .where(Article.id == article_id)
    )


def count_articles(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Article)) or 0


def record_crawl(session: Session, source_name: str, error: str | None) -> None:
    """Note the outcome of crawling SOURCE_NAME (error None means it succeeded)."""
    source = session.scalar(select(Source).where(Source.name == source_name))
    if source is None:
        return
    if error is None:
        source.last_crawled_at = utcnow()
    source.last_error = error
