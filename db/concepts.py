"""Concepts (therapies, cancer types, targets) and their hierarchy."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import numpy as np
import sqlalchemy as sa
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import listing
from db.dates import article_date, date_text
from db.models import Article, ArticleConcept, Concept


@dataclass(frozen=True)
class ConceptData:
    slug: str
    label: str
    name: str
    synonyms: tuple[str, ...] = ()
    xrefs: Mapping[str, str] = field(default_factory=dict)
    parent: str | None = None


def sync_concepts(session: Session, concepts: Iterable[ConceptData]) -> dict[str, int]:
    """Insert or update concepts by slug; returns slug -> id for every concept given."""
    wanted = {c.slug: c for c in concepts}
    existing = {
        c.slug: c for c in session.scalars(select(Concept).where(Concept.slug.in_(list(wanted))))
    }
    for slug, data in wanted.items():
        row = existing.get(slug)
        if row is None:
            row = Concept(slug=slug)
            session.add(row)
            existing[slug] = row
        row.label = data.label
        row.name = data.name
        row.synonyms = list(data.synonyms)
        row.xrefs = dict(data.xrefs)
        row.parent_slug = data.parent
    session.flush()
    return {slug: row.id for slug, row in existing.items()}


def concept_ids_by_slug(session: Session, slugs: Iterable[str]) -> dict[str, int]:
    slugs = list(slugs)
    rows = session.execute(select(Concept.slug, Concept.id).where(Concept.slug.in_(slugs)))
    return {slug: id_ for slug, id_ in rows}


def get_concept(session: Session, slug: str) -> Concept | None:
    return session.scalar(select(Concept).where(Concept.slug == slug))


def with_descendants(session: Session, slug: str) -> set[int]:
    """Ids of SLUG and every concept below it: following a parent includes its children."""
    children: dict[str | None, list[tuple[str, int]]] = defaultdict(list)
    root_id = None
    for child_slug, child_id, parent in session.connection().execute(
        select(Concept.slug, Concept.id, Concept.parent_slug)
    ):
        children[parent].append((child_slug, child_id))
        if child_slug == slug:
            root_id = child_id
    if root_id is None:
        return set()
    found, stack = {root_id}, [slug]
    while stack:
        for child_slug, child_id in children.get(stack.pop(), []):
            if child_id not in found:
                found.add(child_id)
                stack.append(child_slug)
    return found


def concepts_of_article(session: Session, article_id: int) -> list[Concept]:
    """One article's concepts in full (synonyms too), most-mentioned first."""
    return list(session.scalars(
        select(Concept).join(ArticleConcept, ArticleConcept.concept_id == Concept.id)
        .where(ArticleConcept.article_id == article_id)
        .order_by(ArticleConcept.mentions.desc(), Concept.name)))


@dataclass(frozen=True)
class Tag:
    """What a list shows of an article's concept (a page of 20 articles has about 80 tags:
    loading each as a full Concept cost a tenth of a search page)."""
    id: int
    slug: str
    label: str
    name: str


def concepts_for_articles(session: Session, article_ids: Iterable[int]) -> dict[int, list[Tag]]:
    """Tags of each article, most-mentioned first (then by name)."""
    ids = [int(i) for i in article_ids]
    result: dict[int, list[Tag]] = {i: [] for i in ids}
    if not ids:
        return result
    rows: list[tuple[int, int, str, str, str, int]]  # article, concept, slug, label, name, mentions
    index = listing.listing_for(session)
    if index is not None:  # the index holds every tag: no query (a twentieth of a search page)
        columns, table = index
        rows = [(article_id, concept_id, (row := table.rows[concept_id]).slug, row.label,
                 row.name, mentions)
                for article_id, start, end in listing.tag_runs(columns, ids)
                for concept_id, mentions in zip(columns.tag_concepts[start:end].tolist(),
                                                columns.tag_mentions[start:end].tolist(),
                                                strict=True)]
    else:
        # written out, the ids as integer literals, and run by the driver: building the
        # statement through SQLAlchemy took twice as long as the query itself for a page of 20,
        # and its result handling as long again
        cursor = session.connection().connection.driver_connection.cursor()
        cursor.execute(
            f"SELECT ac.article_id, c.id, c.slug, c.label, c.name, ac.mentions "
            f"FROM {ArticleConcept.__tablename__} ac "
            f"JOIN {Concept.__tablename__} c ON c.id = ac.concept_id "
            f"WHERE ac.article_id IN ({','.join(map(str, ids))})")
        rows = cursor.fetchall()
    known: dict[int, Tag] = {}
    # sorted here, not by the database: names compare the same on every backend
    for article_id, concept_id, slug, label, name, _ in sorted(
            rows, key=lambda row: (-row[5], row[4])):
        tag = known.get(concept_id)
        if tag is None:
            tag = known[concept_id] = Tag(concept_id, slug, label, name)
        result[article_id].append(tag)
    return result


def ancestor_chains(concepts: Iterable[tuple[int, str, str | None]]) -> dict[int, list[int]]:
    """For (id, slug, parent slug) of every concept, each id's chain up the hierarchy: itself,
    its parent, and so on to the top (a parent that is missing, or met again, ends it)."""
    rows = list(concepts)
    id_of = {slug: cid for cid, slug, _ in rows}
    parent_of = {cid: id_of.get(parent) if parent else None for cid, _, parent in rows}
    chains: dict[int, list[int]] = {}
    for cid in parent_of:
        chain: list[int] = []
        current: int | None = cid
        while current is not None and current not in chain:
            chain.append(current)
            current = parent_of.get(current)
        chains[cid] = chain
    return chains


def lineage(session: Session, concept: Concept) -> list[Concept]:
    """CONCEPT's parents, from the top of the hierarchy down to its own parent."""
    chain: list[Concept] = []
    seen, parent = {concept.id}, concept.parent_slug
    while parent:  # a parent that is missing, or met again, ends it (as ancestor_chains)
        found = get_concept(session, parent)
        if found is None or found.id in seen:
            break
        chain.append(found)
        seen.add(found.id)
        parent = found.parent_slug
    return chain[::-1]


def children_of(session: Session, slug: str) -> list[Concept]:
    return list(session.scalars(
        select(Concept).where(Concept.parent_slug == slug).order_by(Concept.name)))


def _visible_tagged(concept_ids: set[int]) -> sa.Select[tuple[int]]:
    """Ids of the articles tagged with any of CONCEPT_IDS that readers see (not filtered)."""
    # each article once without a DISTINCT over the join (several times quicker on SQLite)
    return (select(Article.id.label("article_id"))
            .where(Article.filtered.is_(False),
                   Article.id.in_(select(ArticleConcept.article_id)
                                  .where(ArticleConcept.concept_id.in_(concept_ids)))))


def count_visible_tagged(session: Session, concept_ids: set[int]) -> int:
    """How many articles readers see that are tagged with any of CONCEPT_IDS."""
    index = listing.listing_for(session)
    if index is not None:
        columns, _ = index
        return int(np.count_nonzero(listing.concept_mask(columns, concept_ids) & columns.visible))
    tagged = _visible_tagged(concept_ids).subquery()
    return session.scalar(select(func.count()).select_from(tagged)) or 0


def articles_per_month(session: Session, concept_ids: set[int], months: int = 24,
                       today: date | None = None) -> list[tuple[str, int]]:
    """How many visible articles tagged with CONCEPT_IDS appeared in each of the last MONTHS
    months ("YYYY-MM", count), oldest first, empty months included. An article counts in the
    month it was published, or fetched when it gives no date."""
    today = today or datetime.now(UTC).date()
    keys = []
    year, month = today.year, today.month
    for _ in range(months):
        keys.append(f"{year:04d}-{month:02d}")
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    keys.reverse()
    index = listing.listing_for(session)
    if index is not None:
        columns, _ = index
        first = (int(keys[0][:4]) - 1970) * 12 + int(keys[0][5:]) - 1
        tagged = listing.concept_mask(columns, concept_ids) & columns.visible
        months_in = columns.month[tagged]
        counted = np.bincount(months_in[months_in >= first] - first, minlength=len(keys))
        return [(key, int(n)) for key, n in zip(keys, counted[:len(keys)], strict=True)]
    tagged = _visible_tagged(concept_ids).subquery()
    bucket = date_text(session, article_date(), "%Y-%m")
    counts = dict(session.execute(
        select(bucket, func.count())
        .join(tagged, tagged.c.article_id == Article.id)
        .where(bucket >= keys[0])
        .group_by(bucket)).all())
    return [(key, int(counts.get(key, 0))) for key in keys]


def co_occurring(session: Session, concept_ids: set[int], limit: int = 12,
                 leave_out: Iterable[int] = ()) -> dict[str, list[tuple[Concept, int]]]:
    """The concepts most often tagged on the same visible articles as CONCEPT_IDS, by label,
    with how many articles they share (for a drug: the cancers it is reported in). LEAVE_OUT:
    concepts not to list (a drug's own classes say nothing new)."""
    index = listing.listing_for(session)
    if index is not None:
        columns, table = index
        tagged = listing.concept_mask(columns, concept_ids) & columns.visible
        counts = np.bincount(listing.concepts_in(columns, tagged, ancestors=False),
                             minlength=table.size)
        # left out once counted: not each tag checked (a million articles' 3.8 million: 6 ms)
        counts[[cid for cid in concept_ids | set(leave_out) if 0 <= cid < len(counts)]] = 0
        ranked = sorted(((table.rows[int(cid)], int(counts[cid]))
                         for cid in np.flatnonzero(counts)),
                        key=lambda row: (-row[1], row[0].name))
        chosen: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for row, count in ranked:
            if len(chosen[row.label]) < limit:
                chosen[row.label].append((row.id, count))
        loaded = {c.id: c for c in session.scalars(select(Concept).where(
            Concept.id.in_([cid for values in chosen.values() for cid, _ in values])))}
        return {label: [(loaded[cid], count) for cid, count in values]
                for label, values in chosen.items()}
    tagged = _visible_tagged(concept_ids).subquery()
    # one row per (article, concept), and each tagged article once: a plain count is distinct
    shared = func.count()
    rows = session.execute(
        select(Concept, shared)
        .join(ArticleConcept, ArticleConcept.concept_id == Concept.id)
        .join(tagged, tagged.c.article_id == ArticleConcept.article_id)
        .where(Concept.id.not_in(concept_ids | set(leave_out)))
        .group_by(Concept.id)
        .order_by(shared.desc(), Concept.name)).all()
    result: dict[str, list[tuple[Concept, int]]] = defaultdict(list)
    for concept, count in rows:
        if len(result[concept.label]) < limit:
            result[concept.label].append((concept, int(count)))
    return dict(result)


# neoplasm classes that would fill a column of the map without telling a reader anything
TOO_BROAD_FOR_MAP = frozenset({"solid-tumour", "carcinoma", "adenocarcinoma",
                               "haematological-malignancy"})


@dataclass
class PairMap:
    """How many visible articles name each therapy with each cancer type."""
    therapies: list[Concept]
    cancers: list[Concept]
    counts: dict[tuple[int, int], int]  # (therapy id, cancer id) -> articles

    @property
    def most(self) -> int:
        return max(self.counts.values(), default=0)


def therapy_cancer_map(session: Session, size: int = 12) -> PairMap:
    """The SIZE therapies and SIZE cancer types with the most visible articles, and how many
    articles name each pair; an article about a narrower cancer (NSCLC) counts for a broader one
    shown (lung cancer), a narrower therapy (pembrolizumab) for its class."""
    concepts = {c.id: c for c in session.scalars(select(Concept))}
    index = listing.listing_for(session)
    if index is not None:
        return _indexed_map(index[0], concepts, size)
    lifted = ancestor_chains((c.id, c.slug, c.parent_slug) for c in concepts.values())
    pairs = session.execute(
        select(ArticleConcept.article_id, ArticleConcept.concept_id)
        .join(Article, Article.id == ArticleConcept.article_id)
        .where(Article.filtered.is_(False), Article.story_id.is_(None))).all()
    tagged: dict[int, set[int]] = defaultdict(set)  # article -> concepts, ancestors included
    for article_id, concept_id in pairs:
        tagged[article_id].update(lifted.get(concept_id, [concept_id]))
    totals: dict[int, int] = defaultdict(int)
    for ids in tagged.values():
        for cid in ids:
            totals[cid] += 1

    therapies, cancers = (_top_for_map(concepts, totals, label, size)
                          for label in ("THERAPY", "CANCER"))
    therapy_ids, cancer_ids = {c.id for c in therapies}, {c.id for c in cancers}
    counts: dict[tuple[int, int], int] = defaultdict(int)
    for ids in tagged.values():
        for t in ids & therapy_ids:
            for c in ids & cancer_ids:
                counts[(t, c)] += 1
    return PairMap(therapies, cancers, dict(counts))


def _top_for_map(concepts: Mapping[int, Concept], totals: Mapping[int, int], label: str,
                 size: int) -> list[Concept]:
    ranked = sorted((c for c in concepts.values() if c.label == label and totals.get(c.id)
                     and c.parent_slug is not None and c.slug not in TOO_BROAD_FOR_MAP),
                    key=lambda c: (-totals[c.id], c.name))
    return ranked[:size]


def _indexed_map(columns: listing.Columns, concepts: Mapping[int, Concept], size: int
                 ) -> PairMap:
    """therapy_cancer_map over the listing index."""
    listed_pairs = columns.listed[columns.up_pos]
    positions, tagged = columns.up_pos[listed_pairs], columns.up_concepts[listed_pairs]
    totals = dict(zip(*np.unique(tagged, return_counts=True), strict=True))
    totals = {int(cid): int(n) for cid, n in totals.items()}
    therapies, cancers = (_top_for_map(concepts, totals, label, size)
                          for label in ("THERAPY", "CANCER"))

    def indicator(chosen: list[Concept]) -> np.ndarray:  # article x concept, 1 where tagged
        found = np.zeros((len(columns), len(chosen)), dtype=np.int32)
        for j, concept in enumerate(chosen):
            found[positions[tagged == concept.id], j] = 1
        return found

    both = indicator(therapies).T @ indicator(cancers)
    counts = {(t.id, c.id): int(both[i, j]) for i, t in enumerate(therapies)
              for j, c in enumerate(cancers) if both[i, j]}
    return PairMap(therapies, cancers, counts)
