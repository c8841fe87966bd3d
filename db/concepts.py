"""Concepts (therapies, cancer types, targets) and their hierarchy."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import ArticleConcept, Concept


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
    for child_slug, child_id, parent in session.execute(
        select(Concept.slug, Concept.id, Concept.parent_slug)
    ):
        children[parent].append((child_slug, child_id))
    root = get_concept(session, slug)
    if root is None:
        return set()
    found, stack = {root.id}, [slug]
    while stack:
        for child_slug, child_id in children.get(stack.pop(), []):
            if child_id not in found:
                found.add(child_id)
                stack.append(child_slug)
    return found


def concepts_for_articles(session: Session, article_ids: Iterable[int]) -> dict[int, list[Concept]]:
    """Tags of each article, most-mentioned first."""
    ids = list(article_ids)
    result: dict[int, list[Concept]] = {i: [] for i in ids}
    if not ids:
        return result
    rows = session.execute(
        select(ArticleConcept.article_id, Concept)
        .join(Concept, Concept.id == ArticleConcept.concept_id)
        .where(ArticleConcept.article_id.in_(ids))
        .order_by(ArticleConcept.mentions.desc(), Concept.name)
    )
    for article_id, concept in rows:
        result[article_id].append(concept)
    return result
