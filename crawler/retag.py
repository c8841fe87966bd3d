"""Re-tagging the stored articles after a vocabulary or tagger change (`immunofeed tag
--rebuild`): the crawl's own tag step (crawler.analysis.tag_text) run over the database, on
every core, in batches committed one by one.

Each article gets new mentions, summary, relevance (and so filtered or not), labels and cited
identifiers; what a crawl alone knows (text, dates, identifiers, evidence matched by journal)
is left as it is. An article whose tags come out the same is not written.

The work is a run recorded in the database (db.models.RetagRun): the ids up to the largest at
its start, cut into chunks that processes claim one at a time, on this machine or any other
sharing the database. A chunk is done once all its articles are committed. A process that starts
while a run with the same vocabulary is unfinished joins it and takes the chunks nobody has; a
chunk whose process died is taken over (at once when that process ran on this machine, after
LEASE otherwise). So a stopped or killed rebuild, started again, does only what is left.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crawler.analysis import Tags, tag_text
from crawler.pipelines import concept_data
from db.articles import TagUpdate, update_tags
from db.concepts import sync_concepts
from db.listing import prune_changes
from db.migrate import schema_transaction
from db.models import Article, RetagChunk, RetagRun, Source, utcnow
from db.session import session_scope
from nlp.parallel import fault, map_batches, process_ended, process_name
from nlp.relevance import kept_out
from nlp.vocabulary import vocabulary

BATCH = 100
CHUNK = 2000  # ids per claimed chunk
LEASE = timedelta(minutes=15)  # a chunk claimed this long ago and not done: its worker is gone


@dataclass(frozen=True)
class Retagged:
    articles: int
    changed: int
    run: int = 0
    finished: bool = True  # the whole run is done (not only this process's part)
    # articles the tagger failed on (a fault of its own), kept with their earlier tags: id ->
    # what failed
    failed: dict[int, str] = field(default_factory=dict)


def tags_of(batch: list[tuple[int, str, str]]) -> list[Tags | str]:
    """A worker's answer for a batch of (article id, title, body): each article's tags, or what
    failed when the tagger failed on it (the others are tagged all the same)."""
    answers: list[Tags | str] = []
    for _, title, body in batch:
        try:
            answers.append(tag_text(title, body))
        except Exception as exc:  # noqa: BLE001 - reported with the article's id
            answers.append(fault(exc))
    return answers


def vocabulary_digest() -> str:
    concepts = sorted((asdict(concept_data(c)) for c in vocabulary()), key=lambda c: c["slug"])
    return hashlib.sha256(json.dumps(concepts, sort_keys=True).encode()).hexdigest()


def join_run(database_url: str, chunk_size: int = CHUNK) -> RetagRun:
    """The unfinished run for the current vocabulary, or a new one over today's ids."""
    digest = vocabulary_digest()
    with schema_transaction(database_url) as connection, Session(bind=connection) as session:
        run = session.scalar(select(RetagRun).where(RetagRun.finished_at.is_(None))
                             .order_by(RetagRun.id.desc()).limit(1))
        if run is not None and run.vocabulary != digest:  # made for another vocabulary
            run.finished_at = utcnow()
            run = None
        if run is None:
            last_id = session.scalar(select(func.max(Article.id))) or 0
            run = RetagRun(vocabulary=digest, chunk_size=chunk_size, last_id=last_id,
                           started_at=utcnow())
            session.add(run)
        session.flush()
        session.expunge(run)
    return run


def _chunks(run: RetagRun) -> int:
    return -(-run.last_id // run.chunk_size)


def _gone(worker: str, claimed_at, now) -> bool:  # noqa: ANN001
    ended = process_ended(worker)
    return ended if ended is not None else claimed_at < now - LEASE


def claim_chunk(database_url: str, run: RetagRun, worker: str) -> int | None:
    """A chunk of RUN nobody holds (or whose holder is gone), now held by WORKER."""
    now = utcnow()
    with session_scope(database_url, writer=True) as session:
        held = {c.chunk: c for c in session.scalars(
            select(RetagChunk).where(RetagChunk.run_id == run.id))}
        for chunk in range(_chunks(run)):
            found = held.get(chunk)
            if found is None:
                try:
                    with session.begin_nested():
                        session.add(RetagChunk(run_id=run.id, chunk=chunk, worker=worker,
                                               claimed_at=now))
                except IntegrityError:
                    continue  # another process claimed it a moment ago
                return chunk
            if found.done_at is None and found.worker != worker and _gone(
                    found.worker, found.claimed_at, now):
                taken = session.execute(
                    update(RetagChunk)
                    .where(RetagChunk.run_id == run.id, RetagChunk.chunk == chunk,
                           RetagChunk.worker == found.worker, RetagChunk.done_at.is_(None))
                    .values(worker=worker, claimed_at=now)
                    .execution_options(synchronize_session=False))
                if taken.rowcount == 1:
                    return chunk
    return None


def _chunk_done(database_url: str, run: RetagRun, chunk: int, articles: int,
                changed: int) -> None:
    with session_scope(database_url, writer=True) as session:
        session.execute(update(RetagChunk)
                        .where(RetagChunk.run_id == run.id, RetagChunk.chunk == chunk)
                        .values(done_at=utcnow(), articles=articles, changed=changed)
                        .execution_options(synchronize_session=False))


def _finish(database_url: str, run: RetagRun) -> bool:
    """Mark RUN finished if every chunk is done; whether it is."""
    with session_scope(database_url, writer=True) as session:
        done = session.scalar(select(func.count()).select_from(RetagChunk).where(
            RetagChunk.run_id == run.id, RetagChunk.done_at.is_not(None)))
        if done < _chunks(run):
            return False
        session.execute(update(RetagRun).where(RetagRun.id == run.id,
                                               RetagRun.finished_at.is_(None))
                        .values(finished_at=utcnow())
                        .execution_options(synchronize_session=False))
        prune_changes(session)
        return True


def _batches(database_url: str, run: RetagRun, worker: str
             ) -> Iterator[list[tuple[int, str, str]]]:
    """The (id, title, body) of every article in each chunk this worker claims, a batch at a
    time (each read in its own short transaction, so writers are never kept waiting)."""
    while (chunk := claim_chunk(database_url, run, worker)) is not None:
        last = chunk * run.chunk_size
        end = min(last + run.chunk_size, run.last_id)
        empty = True
        while True:
            with session_scope(database_url) as session:
                rows = [tuple(row) for row in session.execute(
                    select(Article.id, Article.title, Article.body)
                    .where(Article.id > last, Article.id <= end)
                    .order_by(Article.id).limit(BATCH))]
            if not rows:
                break
            empty = False
            yield rows  # type: ignore[misc]
            last = rows[-1][0]
        if empty:  # nothing left in that id range (deleted articles)
            _chunk_done(database_url, run, chunk, 0, 0)


def retag_all(database_url: str, jobs: int = 1,
              progress: Callable[[int], None] = lambda done: None,
              chunk_size: int = CHUNK) -> Retagged:
    """Take part in re-tagging every article (module docstring); PROGRESS is told how many
    articles each batch held."""
    with session_scope(database_url, writer=True) as session:
        concept_ids = sync_concepts(session, (concept_data(c) for c in vocabulary()))
        topical = dict(session.execute(select(Source.id, Source.topical)).all())
    run = join_run(database_url, chunk_size)
    worker = process_name()
    articles = changed = 0
    failed: dict[int, str] = {}
    current, in_chunk = None, [0, 0]  # the chunk being written, its articles and changes
    for batch, answers in map_batches(tags_of, _batches(database_url, run, worker), jobs):
        chunk = (batch[0][0] - 1) // run.chunk_size
        if chunk != current:
            if current is not None:  # batches come in order: the previous chunk is complete
                _chunk_done(database_url, run, current, *in_chunk)
            current, in_chunk = chunk, [0, 0]
        failed.update((article_id, answer) for (article_id, _, _), answer
                      in zip(batch, answers, strict=True) if isinstance(answer, str))
        batch_changed = _store(database_url, batch, answers, concept_ids, topical)
        in_chunk[0] += len(batch)
        in_chunk[1] += batch_changed
        articles += len(batch)
        changed += batch_changed
        progress(len(batch))
    if current is not None:
        _chunk_done(database_url, run, current, *in_chunk)
    return Retagged(articles, changed, run.id, _finish(database_url, run), failed)


def _store(database_url: str, batch: list[tuple[int, str, str]], answers: list[Tags | str],
           concept_ids: dict[str, int], topical: dict[int, bool]) -> int:
    changed = 0
    with session_scope(database_url, writer=True) as session:
        stored = {a.id: a for a in session.scalars(
            select(Article).where(Article.id.in_([row[0] for row in batch])))}
        for (article_id, _, _), tags in zip(batch, answers, strict=True):
            article = stored.get(article_id)
            if article is None or isinstance(tags, str):  # deleted meanwhile, or not tagged
                continue
            changed += update_tags(session, article, TagUpdate(
                summary=tags.summary,
                mentions=tags.mentions,
                relevance=tags.relevance,
                filtered=kept_out(tags.relevance, topical.get(article.source_id, False)),
                language=tags.language,
                labels=tags.labels,
                cites=tags.cites if article.kind == "news" else None,
            ), concept_ids)
    return changed
