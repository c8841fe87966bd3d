"""The curated vocabulary (nlp/vocab/*.jsonl): one concept a line with its synonyms.

Each line: {"slug", "label" (THERAPY|CANCER|TARGET), "name", "synonyms": [...],
"synonyms_es": [...] (optional), "xrefs": {"mesh": "D..."}, "parent": slug or null}.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

VOCAB_DIR = Path(__file__).parent / "vocab"
LABELS = ("THERAPY", "CANCER", "TARGET")

# British and American spellings: every synonym is also matched in the other spelling.
_SPELLINGS = [
    ("tumour", "tumor"),
    ("leukaemia", "leukemia"),
    ("oesophag", "esophag"),
    ("haematolog", "hematolog"),
    ("personalised", "personalized"),
]
_PLURALISABLE = re.compile(
    r"(cancer|carcinoma|tumou?r|lymphoma|leuka?emia|melanoma|sarcoma|glioma|myeloma|neoplasm|"
    r"blastoma|mesothelioma|inhibitor|vaccine|engager|virus)$"
)


class VocabularyError(ValueError):
    pass


@dataclass(frozen=True)
class Concept:
    slug: str
    label: str
    name: str
    synonyms: tuple[str, ...]
    synonyms_es: tuple[str, ...] = ()
    xrefs: dict[str, str] = field(default_factory=dict, hash=False)
    parent: str | None = None


def spelling_variants(term: str) -> set[str]:
    """TERM in both spellings and, for a neoplasm or class noun, in the plural too."""
    forms = {term}
    for british, american in _SPELLINGS:
        for form in list(forms):
            forms.add(form.replace(british, american))
            forms.add(form.replace(american, british))
    for form in list(forms):
        if _PLURALISABLE.search(form):
            forms.add(form[:-5] + "viruses" if form.endswith("virus") else form + "s")
    return forms


def _parse(path: Path, number: int, line: str) -> Concept:
    try:
        data = json.loads(line)
        concept = Concept(
            slug=data["slug"],
            label=data["label"],
            name=data["name"],
            synonyms=tuple(data.get("synonyms", [])),
            synonyms_es=tuple(data.get("synonyms_es", [])),
            xrefs=dict(data.get("xrefs") or {}),
            parent=data.get("parent"),
        )
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise VocabularyError(f"{path.name}:{number}: bad concept line ({exc})") from exc
    if concept.label not in LABELS:
        raise VocabularyError(f"{path.name}:{number}: unknown label {concept.label!r}")
    return concept


def read_vocabulary(directory: Path = VOCAB_DIR) -> list[Concept]:
    concepts: list[Concept] = []
    for path in sorted(directory.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                concepts.append(_parse(path, number, line))
    slugs = [c.slug for c in concepts]
    duplicates = {s for s in slugs if slugs.count(s) > 1}
    if duplicates:
        raise VocabularyError(f"duplicate concept slugs: {sorted(duplicates)}")
    unknown = {c.parent for c in concepts if c.parent and c.parent not in set(slugs)}
    if unknown:
        raise VocabularyError(f"parents that are not concepts: {sorted(unknown)}")
    return concepts


@lru_cache(maxsize=1)
def vocabulary() -> tuple[Concept, ...]:
    return tuple(read_vocabulary())


def by_slug() -> dict[str, Concept]:
    return {c.slug: c for c in vocabulary()}


def surface_forms(concept: Concept) -> Iterator[str]:
    seen: set[str] = set()
    for synonym in (*concept.synonyms, *concept.synonyms_es):
        for form in sorted(spelling_variants(synonym)):
            if form not in seen:
                seen.add(form)
                yield form
