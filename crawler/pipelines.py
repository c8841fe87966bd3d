"""Item pipelines, in order: normalize -> dedupe -> tag -> store."""

from __future__ import annotations

import logging
import time
from dataclasses import fields

from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem
from sqlalchemy.orm import Session

from crawler.analysis import minhash, pool_for, tag_text
from crawler.items import ArticleItem
from crawler.urls import canonical_url
from db.articles import ArticleData, upsert_article
from db.concepts import ConceptData, sync_concepts
from db.evidence import journal_names, papers_named_in
from db.models import Article
from db.session import new_session, session_scope
from db.sources import CrawlOutcome, get_or_create_source, record_crawl
from db.stories import assign_story
from nlp.relevance import kept_out
from nlp.vocabulary import Concept, vocabulary

logger = logging.getLogger(__name__)


def _paragraphs(text: str) -> str:
    paragraphs = (" ".join(p.split()) for p in text.replace("\r", "").split("\n"))
    return "\n\n".join(p for p in paragraphs if p)


class NormalizePipeline:
    """Canonical URL and clean whitespace; an item without a title goes no further."""

    def process_item(self, item: ArticleItem) -> ArticleItem:
        item.title = " ".join(item.title.split())
        if not item.title:
            raise DropItem(f"no title: {item.url}")
        if not item.url.lower().startswith(("http://", "https://")):
            raise DropItem(f"not a web address: {item.url[:200]}")
        item.body = _paragraphs(item.body)
        item.canonical_url = canonical_url(item.canonical_url or item.url)
        return item


class _PoolPipeline:
    """A pipeline whose work runs in the crawl's analysis worker processes."""

    def __init__(self, crawler: Crawler):
        self.pool = pool_for(crawler.settings)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> _PoolPipeline:
        return cls(crawler)


class DedupePipeline(_PoolPipeline):
    """A MinHash signature of each news article, so the store can group the same story carried
    by several sources. Papers and trials are one record per work by their identifiers."""

    async def process_item(self, item: ArticleItem) -> ArticleItem:
        if item.kind == "news":
            item.signature = await self.pool.run(minhash, item.title, item.body)
        return item


class TagPipeline(_PoolPipeline):
    """Entities and summary from nlp, the language guessed when the page did not say."""

    async def process_item(self, item: ArticleItem) -> ArticleItem:
        tags = await self.pool.run(tag_text, item.title, item.body)
        item.summary = tags.summary
        item.mentions = tags.mentions
        item.relevance = tags.relevance
        # off-topic items from general sources are kept, but out of the site, feeds and digests
        item.filtered = kept_out(item.relevance, item.topical)
        item.language = item.language or tags.language
        if tags.cites and item.kind == "news":
            item.extra = {**item.extra, "cites": tags.cites}  # evidence: papers and trials
        item.extra = {**item.extra, "labels": tags.labels}  # type, trial phase, setting
        return item


def concept_data(concept: Concept) -> ConceptData:
    return ConceptData(
        slug=concept.slug,
        label=concept.label,
        name=concept.name,
        synonyms=concept.synonyms + concept.synonyms_es,
        xrefs=concept.xrefs,
        parent=concept.parent,
    )


_STORED_FIELDS = sorted(
    {f.name for f in fields(ArticleData)} & {f.name for f in fields(ArticleItem)}
)


class StorePipeline:
    """Upsert by work (identifier or canonical URL): a re-crawl updates in place and never
    duplicates. Writes are committed in batches (STORE_BATCH_ITEMS items or
    STORE_BATCH_SECONDS); an item not yet committed when a crawl is killed was never stored, so
    the next crawl fetches it again."""

    def __init__(self, database_url: str, crawler: Crawler):
        self.database_url = database_url
        self.crawler = crawler
        self.batch_items = crawler.settings.getint("STORE_BATCH_ITEMS", 50)
        self.batch_seconds = crawler.settings.getfloat("STORE_BATCH_SECONDS", 1.0)
        self._session: Session | None = None
        self._pending: list[str] = []  # outcomes waiting for the commit
        self._opened = 0.0
        self._concept_ids: dict[str, int] = {}
        self._journals: list[str] = []

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> StorePipeline:
        return cls(crawler.settings.get("IMMUNOFEED_DATABASE_URL"), crawler)

    def open_spider(self) -> None:
        spider = self.crawler.spider
        with session_scope(self.database_url) as session:
            self._concept_ids = sync_concepts(session, (concept_data(c) for c in vocabulary()))
            self._journals = journal_names(session)
            for source in getattr(spider, "sources", []):
                get_or_create_source(session, source.name, source.type, source.url,
                                     topical=source.topical)

    def process_item(self, item: ArticleItem) -> ArticleItem:
        # the item's fields that the database keeps, under the same names
        data = ArticleData(source_name=item.source or None,
                           **{name: getattr(item, name) for name in _STORED_FIELDS})
        if self._session is None:
            self._session, self._opened = new_session(self.database_url), time.monotonic()
        session = self._session
        if item.kind == "news" and self._journals:
            papers = papers_named_in(session, f"{item.title}\n{item.body}", item.published_at,
                                     self._journals)
            if papers:
                data.extra = {**data.extra, "evidence_ids": papers}
        with session.begin_nested():  # a failing item rolls back alone, not the batch
            outcome, article_id = upsert_article(session, data, self._concept_ids)
            if item.signature is not None and outcome != "unchanged":
                article = session.get(Article, article_id)
                if article is not None:
                    assign_story(session, article, item.signature, new=outcome == "new")
        self._pending.append(outcome)
        if (len(self._pending) >= self.batch_items
                or time.monotonic() - self._opened >= self.batch_seconds):
            self._commit()
        return item

    def _commit(self) -> None:
        session, pending = self._session, self._pending
        self._session, self._pending = None, []
        if session is None:
            return
        try:
            session.commit()
        except Exception:
            session.rollback()
            self.crawler.stats.inc_value("immunofeed/items_failed", len(pending))
            logger.exception("could not store %d article(s); the next crawl fetches them again",
                             len(pending))
            return
        finally:
            session.close()
        for outcome in pending:
            self.crawler.stats.inc_value(f"immunofeed/articles_{outcome}")

    def close_spider(self) -> None:
        self._commit()
        outcomes: dict[str, CrawlOutcome] = getattr(self.crawler.spider, "outcomes", {})
        with session_scope(self.database_url) as session:
            for name, outcome in outcomes.items():
                record_crawl(session, name, outcome)
