"""Articles: the one write path (upsert by canonical URL) and the reads the site needs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from db.concepts import concept_ids_by_slug
from db.fts_sqlite import EVERY_ARTICLE
from db.models import IDENTIFIERS, Article, ArticleConcept, Source, utcnow

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
    kind: str = "news"
    doi: str | None = None
    pmid: str | None = None
    pmcid: str | None = None
    nct_id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    relevance: float = 1.0
    filtered: bool = False

    def identifiers(self) -> dict[str, str]:
        return {name: value for name in IDENTIFIERS if (value := getattr(self, name))}


def _content_fields(data: ArticleData) -> dict[str, object]:
    return {
        "url": data.url,
        "title": data.title,
        "body": data.body,
        "summary": data.summary,
        "language": data.language,
        "published_at": data.published_at,
        "kind": data.kind,
        "relevance": data.relevance,
        "filtered": data.filtered,
        **data.identifiers(),
    }


def find_work(session: Session, data: ArticleData) -> Article | None:
    """The stored article that is the same work as DATA: same identifier, or same URL."""
    clauses = [getattr(Article, name) == value for name, value in data.identifiers().items()]
    if clauses:
        found = session.scalar(select(Article).where(or_(*clauses)).limit(1))
        if found is not None:
            return found
    return session.scalar(select(Article).where(Article.canonical_url == data.canonical_url))


def _merged_extra(article: Article, data: ArticleData) -> dict[str, Any]:
    """Old and new metadata together: other URLs of the work are kept as links, and a trial's
    earlier statuses as its status history."""
    old = dict(article.extra or {})
    merged = {**old, **data.extra}
    links = list(old.get("links", []))
    for url in (article.url, data.url):
        if url not in links:
            links.append(url)
    if len(links) > 1:
        merged["links"] = links
    old_status, new_status = old.get("status"), data.extra.get("status")
    if old_status and new_status and old_status != new_status:
        history = list(old.get("status_history", []))
        history.append({"status": old_status, "until": utcnow().isoformat(timespec="seconds")})
        merged["status_history"] = history
    return merged


def _insert(session: Session, article: Article) -> IntegrityError | None:
    """Add ARTICLE; the error if another writer stored the same work first."""
    if session.get_bind().dialect.name == "sqlite":
        # nobody else can store it meanwhile: a transaction that has read cannot write after
        # another's commit on SQLite ("database is locked"), so no savepoint is needed
        session.add(article)
        session.flush()
        return None
    try:
        with session.begin_nested():
            session.add(article)
            session.flush()
    except IntegrityError as error:
        return error
    return None


def upsert_article(session: Session, data: ArticleData,
                   concept_ids: Mapping[str, int] | None = None) -> tuple[UpsertResult, int]:
    """Store DATA once per work (same identifier or canonical URL): insert it, update it if it
    changed, or leave it as it is."""
    source_id = None
    if data.source_name:
        # a stored source is looked up once per session (a crawl's batch stores many from one)
        known: dict[str, int] = session.info.setdefault("source_ids", {})
        source_id = known.get(data.source_name)
        if source_id is None:
            source_id = session.scalar(select(Source.id).where(Source.name == data.source_name))
            if source_id is not None:
                known[data.source_name] = source_id
    # CONCEPT_IDS (slug -> id) may be given by a caller storing many articles
    if concept_ids is None:
        concept_ids = concept_ids_by_slug(session, data.mentions)
    fields = _content_fields(data)
    new_mentions = {concept_ids[s]: n for s, n in data.mentions.items() if s in concept_ids}

    article = find_work(session, data)
    if article is None:
        article = Article(canonical_url=data.canonical_url, source_id=source_id,
                          extra=dict(data.extra), **fields, tag_terms=tag_terms(new_mentions))
        clash = _insert(session, article)
        if clash is None:
            _set_mentions(session, article, new_mentions, {})
            return "new", article.id
        article = find_work(session, data)  # another writer stored it first: update that
        if article is None:
            raise clash

    extra = _merged_extra(article, data)
    changed = extra != (article.extra or {}) or any(
        getattr(article, name) != value for name, value in fields.items()
    )
    old_mentions = {
        concept_id: count
        for concept_id, count in session.execute(
            select(ArticleConcept.concept_id, ArticleConcept.mentions).where(
                ArticleConcept.article_id == article.id
            )
        )
    }
    if not changed and old_mentions == new_mentions:
        return "unchanged", article.id
    for name, value in fields.items():
        setattr(article, name, value)
    article.extra = extra
    article.fetched_at = utcnow()
    if source_id is not None:
        article.source_id = source_id
    _set_mentions(session, article, new_mentions, old_mentions)
    return "updated", article.id


def tag_terms(concept_ids: Iterable[int]) -> str:
    """An article's `tag_terms`: the token every article holds, then a token per concept it is
    tagged with (db/fts_sqlite.py)."""
    return " ".join([EVERY_ARTICLE, *(f"c{cid}" for cid in sorted(set(concept_ids)))])


def _set_mentions(session: Session, article: Article, wanted: Mapping[int, int],
                  old: Mapping[int, int]) -> None:
    """Give ARTICLE the tags WANTED (concept id -> mentions) in place of OLD, writing only what
    changes; its tag_terms first, so that the triggers keeping them for other writers find
    nothing to do (on SQLite each of their updates would index the article's text again)."""
    terms = tag_terms(wanted)
    if article.tag_terms != terms:
        article.tag_terms = terms
        session.flush()
    gone = [cid for cid in old if cid not in wanted]
    if gone:
        session.execute(delete(ArticleConcept).where(ArticleConcept.article_id == article.id,
                                                     ArticleConcept.concept_id.in_(gone)))
    for cid, count in wanted.items():
        if cid in old and old[cid] != count:
            session.execute(update(ArticleConcept).where(
                ArticleConcept.article_id == article.id, ArticleConcept.concept_id == cid)
                .values(mentions=count))
    added = [{"article_id": article.id, "concept_id": cid, "mentions": count}
             for cid, count in wanted.items() if cid not in old]
    if added:
        session.execute(insert(ArticleConcept.__table__), added)


@dataclass(frozen=True)
class TagUpdate:
    """What tagging an article's text again gives (crawler/retag.py)."""
    summary: str
    mentions: Mapping[str, int]
    relevance: float
    filtered: bool
    language: str | None
    labels: Mapping[str, Any]
    cites: Mapping[str, list[str]] | None  # None: the article's kind cites nothing


def update_tags(session: Session, article: Article, tags: TagUpdate,
                concept_ids: Mapping[str, int]) -> bool:
    """Give ARTICLE these tags; False when it already had them (nothing is written then). A
    language the source stated is kept."""
    extra = dict(article.extra or {})
    extra["labels"] = dict(tags.labels)
    if tags.cites is not None:
        if tags.cites:
            extra["cites"] = {kind: list(ids) for kind, ids in tags.cites.items()}
        else:
            extra.pop("cites", None)
    fields: dict[str, object] = {"summary": tags.summary, "relevance": tags.relevance,
                                 "filtered": tags.filtered,
                                 "language": article.language or tags.language}
    old_mentions = dict(session.execute(
        select(ArticleConcept.concept_id, ArticleConcept.mentions)
        .where(ArticleConcept.article_id == article.id)).all())
    new_mentions = {concept_ids[s]: n for s, n in tags.mentions.items() if s in concept_ids}
    if (old_mentions == new_mentions and extra == (article.extra or {})
            and all(getattr(article, name) == value for name, value in fields.items())):
        return False
    for name, value in fields.items():
        setattr(article, name, value)
    article.extra = extra
    if old_mentions != new_mentions:
        _set_mentions(session, article, new_mentions, old_mentions)
    return True


MAX_ID = 2**31 - 1  # the largest id the column holds (INTEGER: 32 bits on PostgreSQL)


def get_article(session: Session, article_id: int) -> Article | None:
    if not 0 <= article_id <= MAX_ID:  # /articles/99999999999999999999 is simply not there
        return None
    return session.scalar(
        select(Article)
        .options(selectinload(Article.source), selectinload(Article.concepts))
        .where(Article.id == article_id)
    )


def count_articles(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Article)) or 0


def evidence_for(session: Session, article: Article) -> list[Article]:
    """Stored papers and trials that ARTICLE cites by DOI, PMID or NCT id, or names by journal
    and author."""
    extra = article.extra or {}
    cites = extra.get("cites") or {}
    clauses = [getattr(Article, kind).in_(ids) for kind, ids in cites.items()
               if kind in IDENTIFIERS and ids]
    if extra.get("evidence_ids"):  # matched by journal and author (db.evidence)
        clauses.append(Article.id.in_(extra["evidence_ids"]))
    if not clauses:
        return []
    return list(session.scalars(
        select(Article).where(or_(*clauses), Article.id != article.id).order_by(Article.id)
    ))


def related_articles(session: Session, article: Article, limit: int = 5) -> list[Article]:
    """Visible articles sharing the most tags with ARTICLE (newest first among equals), other
    tellings of its own story left out."""
    tags = select(ArticleConcept.concept_id).where(ArticleConcept.article_id == article.id)
    shared = func.count().label("shared")
    ranked = (select(ArticleConcept.article_id, shared)
              .where(ArticleConcept.concept_id.in_(tags),
                     ArticleConcept.article_id != article.id)
              .group_by(ArticleConcept.article_id).subquery())
    same_story = {article.id, article.story_id} - {None}
    return list(session.scalars(
        select(Article).join(ranked, ranked.c.article_id == Article.id)
        .options(selectinload(Article.source))
        .where(Article.filtered.is_(False), Article.story_id.is_(None),
               Article.id.not_in(same_story))
        .order_by(ranked.c.shared.desc(), Article.published_at.is_(None),
                  Article.published_at.desc(), Article.id.desc())
        .limit(limit)))
