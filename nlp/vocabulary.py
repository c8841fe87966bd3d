"""The curated vocabulary (nlp/vocab/*.jsonl): one concept a line with its synonyms.

Each line: {"slug", "label" (THERAPY|CANCER|TARGET), "name", "synonyms": [...],
"synonyms_es": [...] (optional), "xrefs": {"mesh": "D..."}, "parent": slug or null}, and for
cancers optionally "sites" (the organ words that name the concept with any neoplasm noun:
"ovarian" gives "ovarian tumour", "ovarian carcinoma", "carcinoma of the ovarian"... only the
sensible ones ever match) and "ambiguous" (short forms that are also ordinary words or other
abbreviations, tagged only where the text defines them or speaks of cancer).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

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
    r"(cancer|tumou?r|leuka?emia|neoplasm|malignancy|polyp|oma|inhibitor|vaccine|engager|"
    r"virus)$"
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
    sites: tuple[str, ...] = ()
    ambiguous: tuple[str, ...] = ()


def spelling_variants(term: str) -> set[str]:
    """TERM in both spellings and, for a neoplasm or class noun, in the plural too (the noun
    before "of" in "<noun> of the <site>")."""
    forms = {term}
    for british, american in _SPELLINGS:
        for form in list(forms):
            forms.add(form.replace(british, american))
            forms.add(form.replace(american, british))
    for form in list(forms):
        # "cancer of the ovary": the noun before "of" takes the plural
        head, of, rest = form.partition(" of ")
        if _PLURALISABLE.search(head):
            forms.add(_plural(head) + of + rest)
    return forms


def _plural(noun: str) -> str:
    return (noun[:-5] + "viruses" if noun.endswith("virus")
            else noun[:-1] + "ies" if noun.endswith("malignancy") else noun + "s")


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
            sites=tuple(data.get("sites", [])),
            ambiguous=tuple(data.get("ambiguous", [])),
        )
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise VocabularyError(f"{path.name}:{number}: bad concept line ({exc})") from exc
    if concept.label not in LABELS:
        raise VocabularyError(f"{path.name}:{number}: unknown label {concept.label!r}")
    stray = set(concept.ambiguous) - set(concept.synonyms)
    if stray:
        raise VocabularyError(f"{path.name}:{number}: ambiguous forms that are not synonyms: "
                              f"{sorted(stray)}")
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


@lru_cache(maxsize=1)
def by_slug() -> Mapping[str, Concept]:
    return MappingProxyType({c.slug: c for c in vocabulary()})


# the nouns that name a neoplasm of a site: "<site> <noun>" and "<noun> of the <site>"
NEOPLASM_NOUNS = ("cancer", "carcinoma", "adenocarcinoma", "tumour", "neoplasm", "malignancy")


# nouns also written hyphenated after a one-word site, mostly as a modifier: "breast-cancer risk"
HYPHENATED_NOUNS = ("cancer", "tumour")


def site_phrases(concept: Concept) -> Iterator[str]:
    for site in concept.sites:
        for noun in NEOPLASM_NOUNS:
            yield f"{site} {noun}"
            if noun in HYPHENATED_NOUNS and " " not in site and "-" not in site:
                yield f"{site}-{noun}"
            if site.islower():
                yield f"{noun} of the {site}"
                yield f"{noun} of {site}"


def _variants(terms: Iterator[str] | tuple[str, ...], seen: set[str]) -> Iterator[str]:
    for term in terms:
        for form in sorted(spelling_variants(term)):
            if form not in seen:
                seen.add(form)
                yield form


@lru_cache(maxsize=1)
def _named_forms() -> Mapping[str, str]:
    """Lower-cased forms the vocabulary lists as synonyms (with their spellings and plurals),
    and the concept that lists each."""
    return MappingProxyType({form.lower(): c.slug for c in vocabulary()
                             for term in c.synonyms for form in spelling_variants(term)})


def surface_forms(concept: Concept) -> Iterator[str]:
    """Every form of CONCEPT in English: synonyms and site phrases, both spellings, plurals. A
    site phrase another concept lists as a synonym is that concept's ("lung adenocarcinoma" is
    lung adenocarcinoma, not lung cancer)."""
    yield from _variants(concept.synonyms, set())
    named = _named_forms() if concept in vocabulary() else {}
    for form in _variants(site_phrases(concept), set(concept.synonyms)):
        if named.get(form.lower(), concept.slug) == concept.slug:
            yield form


def spanish_forms(concept: Concept) -> Iterator[str]:
    """The Spanish forms of CONCEPT (some are spelled as in English: "melanoma")."""
    yield from _variants(concept.synonyms_es, set())
