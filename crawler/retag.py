"""Re-tagging the stored articles after a vocabulary or tagger change (`immunofeed tag
--rebuild`): the crawl's own tag step (crawler.analysis.tag_text) run over the database, on
every core, in batches committed one by one.

Each article gets new mentions, summary, relevance (and so filtered or not), labels and cited
identifiers; what a crawl alone knows (text, dates, identifiers, evidence matched by journal)
is left as it is. An article whose tags come out the same is not written. A run stopped half
way leaves every committed batch re-tagged and the rest as it was; running it again finishes
the job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy import select

from crawler.analysis import Tags, tag_text
from crawler.pipelines import concept_data
from db.articles import TagUpdate, update_tags
from db.concepts import sync_concepts
from db.models import Article, Source
from db.session import session_scope
from nlp.parallel import map_batches
from nlp.relevance import kept_out
from nlp.vocabulary import vocabulary

BATCH = 100


@dataclass(frozen=True)
class Retagged:
    articles: int
    changed: int


def tags_of(batch: list[tuple[int, str, str]]) -> list[Tags]:
    """A worker's answer for a batch of (article id, title, body)."""
    return [tag_text(title, body) for _, title, body in batch]


def _batches(database_url: str) -> Iterator[list[tuple[int, str, str]]]:
    """Every article's (id, title, body), in id order, read a batch at a time (each batch in
    its own short transaction, so writers are never kept waiting)."""
    last = 0
    while True:
        with session_scope(database_url) as session:
            rows = [tuple(row) for row in session.execute(
                select(Article.id, Article.title, Article.body)
                .where(Article.id > last).order_by(Article.id).limit(BATCH))]
        if not rows:
            return
        yield rows  # type: ignore[misc]
        last = rows[-1][0]


def retag_all(database_url: str, jobs: int = 1,
              progress: Callable[[int], None] = lambda done: None) -> Retagged:
    """Re-tag every article; PROGRESS is told how many articles each batch held."""
    with session_scope(database_url) as session:
        concept_ids = sync_concepts(session, (concept_data(c) for c in vocabulary()))
        topical = dict(session.execute(select(Source.id, Source.topical)).all())
    articles = changed = 0
    for batch, answers in map_batches(tags_of, _batches(database_url), jobs):
        with session_scope(database_url) as session:
            stored = {a.id: a for a in session.scalars(
                select(Article).where(Article.id.in_([row[0] for row in batch])))}
            for (article_id, _, _), tags in zip(batch, answers, strict=True):
                article = stored.get(article_id)
                if article is None:  # deleted meanwhile
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
        articles += len(batch)
        progress(len(batch))
    return Retagged(articles, changed)
