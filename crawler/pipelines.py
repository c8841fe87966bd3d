"""Item pipelines, in order: normalize -> analyse (tags, and a signature to dedupe by) -> store."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import fields, replace
from typing import Any

from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem
from sqlalchemy.orm import Session

from crawler.analysis import analyse, clean_body, clean_title, pool_for
from crawler.dbwait import UNAVAILABLE, DatabaseGone, describe, retry_seconds, until_available
from crawler.items import ArticleItem
from crawler.urls import canonical_url
from db.articles import ArticleData, upsert_article
from db.concepts import ConceptData, sync_concepts
from db.evidence import journal_names, papers_named_in
from db.listing import prune_changes
from db.models import Article
from db.session import lock_schema, session_scope
from db.sources import CrawlOutcome, get_or_create_source, record_crawl
from db.stories import assign_story
from nlp.relevance import kept_out
from nlp.vocabulary import Concept, vocabulary

logger = logging.getLogger(__name__)


class NormalizePipeline:
    """Canonical URL and clean whitespace; an item without a title goes no further."""

    def process_item(self, item: ArticleItem) -> ArticleItem:
        item.title = clean_title(item.title)
        if not item.title:
            raise DropItem(f"no title: {item.url}")
        if not item.url.lower().startswith(("http://", "https://")):
            raise DropItem(f"not a web address: {item.url[:200]}")
        item.body = clean_body(item.body)
        item.canonical_url = canonical_url(item.canonical_url or item.url)
        return item


class _PoolPipeline:
    """A pipeline whose work runs in the crawl's analysis worker processes."""

    def __init__(self, crawler: Crawler):
        self.pool = pool_for(crawler.settings)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> _PoolPipeline:
        return cls(crawler)


class AnalysisPipeline(_PoolPipeline):
    """Entities, summary and labels from nlp, the language guessed when the page did not say,
    and for news a MinHash signature, so the store can group the same story carried by
    several sources (papers and trials are one record per work by their identifiers)."""

    async def process_item(self, item: ArticleItem) -> ArticleItem:
        done = item.analysed
        if done is not None and (done.title, done.body) == (item.title, item.body):
            tags, item.signature = done.tags, done.signature  # with the page's extraction
        else:
            tags, item.signature = await self.pool.run(analyse, item.title, item.body,
                                                       item.kind == "news")
        item.analysed = None
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


def prepare_store(database_url: str, sources: list[Any]) -> tuple[dict[str, int], list[str]]:
    """What storing needs before a crawl: the vocabulary's concepts in the database (slug ->
    id), the journals papers are named by, and a row for each of SOURCES (SourceConfig). Taken
    in turns with other processes starting at the same moment (on PostgreSQL two registering
    one new source together would otherwise fail on its unique name, and that crawler with it)."""
    with session_scope(database_url, writer=True) as session:
        lock_schema(session.connection())
        concept_ids = sync_concepts(session, (concept_data(c) for c in vocabulary()))
        journals = journal_names(session)
        for source in sources:
            get_or_create_source(session, source.name, source.type, source.url,
                                 topical=source.topical)
    return concept_ids, journals


class StorePipeline:
    """Upsert by work (identifier or canonical URL): a re-crawl updates in place and never
    duplicates. Items are held in memory and written in batches (STORE_BATCH_ITEMS items, or
    whatever came within STORE_BATCH_SECONDS), each in one short transaction, so that several
    crawler processes writing to one SQLite file wait for each other only while a batch is
    written. An item not yet written when a crawl is killed was never stored, so the next crawl
    fetches it again.

    While the database is unavailable (crawler/dbwait.py) the batch is held, items arriving
    meanwhile join it, and all of them are written once it answers."""

    def __init__(self, database_url: str, crawler: Crawler):
        self.database_url = database_url
        self.crawler = crawler
        self.batch_items = crawler.settings.getint("STORE_BATCH_ITEMS", 50)
        self.batch_seconds = crawler.settings.getfloat("STORE_BATCH_SECONDS", 1.0)
        self.retry_seconds = retry_seconds(crawler.settings)
        self._held: list[ArticleItem] = []  # waiting to be written
        self._written: asyncio.Future[None] | None = None  # resolved when they are
        self._timer: Any = None  # the write due STORE_BATCH_SECONDS after the first held item
        self._outage: asyncio.Future[None] | None = None  # set while waiting for the database
        self._concept_ids: dict[str, int] = {}
        self._journals: list[str] = []
        # id() of held items whose commit failed after they were written, and what writing
        # them did then (new, updated)
        self._in_doubt: dict[int, str] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> StorePipeline:
        return cls(crawler.settings.get("IMMUNOFEED_DATABASE_URL"), crawler)

    async def open_spider(self) -> None:
        await until_available(self._prepare, "loading the vocabulary", self.retry_seconds)

    def _prepare(self) -> None:
        self._concept_ids, self._journals = prepare_store(
            self.database_url, getattr(self.crawler.spider, "sources", []))

    async def process_item(self, item: ArticleItem) -> ArticleItem:
        # An item is done once written: until then the crawl is not idle, so it cannot end (or,
        # shared, let the other crawlers end) with articles only in this process's memory.
        self._held.append(item)
        if self._written is None:
            self._written = asyncio.get_running_loop().create_future()
        written = self._written
        if self._outage is not None:  # the database is away: held with the rest
            await asyncio.shield(self._outage)
        elif len(self._held) >= self.batch_items:
            await self._write_or_wait()
        elif self._timer is None:
            from twisted.internet import reactor

            self._timer = reactor.callLater(self.batch_seconds, self._write_on_time)
        await asyncio.shield(written)
        return item

    def _release(self) -> None:
        """The held items are written (or given up): let their process_item calls return."""
        written, self._written = self._written, None
        if written is not None and not written.done():
            written.set_result(None)

    def _write_on_time(self) -> None:
        self._timer = None
        if self._outage is None and self._held:
            asyncio.ensure_future(self._write_or_wait())

    async def _write_or_wait(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        try:
            self._write_held()
        except UNAVAILABLE as error:
            await self._wait_for_database(error)

    def _write(self, session: Session, item: ArticleItem) -> str:
        # the item's fields that the database keeps, under the same names
        data = ArticleData(source_name=item.source or None,
                           **{name: getattr(item, name) for name in _STORED_FIELDS})
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
        return outcome

    def _write_held(self) -> None:
        """Write every held item in one transaction (all of them, or none and raise
        UNAVAILABLE); an item that fails on its own is logged and counted, the rest stored."""
        batch = list(self._held)
        if not batch:
            return
        written: list[tuple[ArticleItem, str]] = []
        failed = 0
        try:
            with session_scope(self.database_url, writer=True) as session:
                for item in batch:
                    try:
                        written.append((item, self._write(session, item)))
                    except UNAVAILABLE:
                        raise
                    except Exception:
                        failed += 1
                        logger.exception("could not store %s", item.url)
        except UNAVAILABLE:
            if len(written) + failed == len(batch):
                # Lost while committing: the commit may have landed without its answer coming
                # back. If so, the next attempt finds these articles as written ("unchanged");
                # what this attempt found is what happened to them.
                for item, outcome in written:
                    self._in_doubt.setdefault(id(item), outcome)
            raise
        outcomes = []
        for item, outcome in written:
            earlier = self._in_doubt.pop(id(item), None)
            outcomes.append(earlier if earlier is not None and outcome == "unchanged"
                            else outcome)
        del self._held[:len(batch)]
        self._release()
        if failed:
            self.crawler.stats.inc_value("immunofeed/items_failed", failed)
        for outcome in outcomes:
            self.crawler.stats.inc_value(f"immunofeed/articles_{outcome}")

    async def _wait_for_database(self, error: BaseException) -> None:
        if self._outage is not None:
            await asyncio.shield(self._outage)
            return
        self._outage = asyncio.get_running_loop().create_future()
        logger.warning("database unavailable: %s; holding %d article(s)", describe(error),
                       len(self._held))
        try:
            await until_available(self._write_held, "storing the held articles",
                                  self.retry_seconds)
        except DatabaseGone as gone:
            self.crawler.stats.inc_value("immunofeed/items_failed", len(self._held))
            logger.error("%s; %d article(s) not stored, the next crawl fetches them again",
                         gone, len(self._held))
            self._held = []
            self._in_doubt.clear()
            self._release()
        finally:
            outage, self._outage = self._outage, None
            outage.set_result(None)

    async def close_spider(self) -> None:
        if self._outage is not None:
            await asyncio.shield(self._outage)
        await self._write_or_wait()
        outcomes: dict[str, CrawlOutcome] = getattr(self.crawler.spider, "outcomes", {})
        shared = getattr(self.crawler.spider, "shared_crawl", None)
        if shared is not None and shared.lost_a_worker():
            logger.warning("a crawler process died during this crawl: its sources' feeds will "
                           "be read in full next time to find what it had not stored")
            outcomes = {name: replace(o, etag=None, last_modified=None)
                        for name, o in outcomes.items()}

        def record() -> None:
            with session_scope(self.database_url, writer=True) as session:
                for name, outcome in outcomes.items():
                    record_crawl(session, name, outcome)
                prune_changes(session)

        try:
            await until_available(record, "recording each source's crawl", self.retry_seconds)
        except DatabaseGone as gone:
            logger.error("%s; the sources' health is not updated for this crawl", gone)
