"""Builds the spaCy pipeline: a blank English tokenizer, a phrase matcher fed from the
vocabulary, and the rules that shape mentions (nlp/rules.py). Sentences are split on the text
itself where they are needed (nlp/summarize.py)."""

from __future__ import annotations

from functools import lru_cache

import spacy
from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span

from nlp.doctext import TextKeepingTokenizer
from nlp.rules import SPANISH_SUFFIX, ConceptRules
from nlp.vocabulary import Concept, spanish_forms, surface_forms, vocabulary


def is_case_sensitive(form: str) -> bool:
    """Short forms with two or more capitals (NSCLC, HCC, PD-1, mCRPC) match only as written,
    so ordinary words that share their letters are left alone."""
    return len(form) <= 6 and sum(ch.isupper() for ch in form) >= 2


def patterns_for(concept: Concept) -> list[dict[str, str]]:
    """Phrase patterns of CONCEPT. Forms only Spanish uses carry a marker the rules resolve by
    the text's language."""
    english = list(surface_forms(concept))
    lowered = {form.lower() for form in english}
    spanish = [form for form in spanish_forms(concept) if form.lower() not in lowered]
    return [
        {"label": concept.label, "pattern": form, "id": concept.slug + suffix}
        for forms, suffix in ((english, ""), (spanish, SPANISH_SUFFIX))
        for form in forms
    ]


class ConceptMatcher:
    """Every vocabulary form found in one pass: short forms as written (ORTH), everything else
    in any case (LOWER). Within each set the longest match wins, then the leftmost; a match in
    any case then displaces the short forms it overlaps ("CAR-T cell therapy" over "CAR-T")."""

    def __init__(self, nlp: Language, patterns: list[dict[str, str]]):
        self.matchers = {attr: PhraseMatcher(nlp.vocab, attr=attr) for attr in ("ORTH", "LOWER")}
        self.meaning: dict[int, tuple[str, str]] = {}  # match id -> (label, concept id)
        forms = [p["pattern"] for p in patterns]
        for pattern, form_doc in zip(patterns, nlp.tokenizer.pipe(forms), strict=True):
            key = f"{pattern['label']}:{pattern['id']}"
            attr = "ORTH" if is_case_sensitive(pattern["pattern"]) else "LOWER"
            self.matchers[attr].add(key, [form_doc])
            self.meaning[nlp.vocab.strings[key]] = (pattern["label"], pattern["id"])

    @staticmethod
    def _longest_first(matches: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
        chosen: list[tuple[int, int, int]] = []
        taken: set[int] = set()
        for key, start, end in sorted(set(matches), key=lambda m: (m[1] - m[2], m[1], m[0])):
            if start not in taken and end - 1 not in taken:
                chosen.append((key, start, end))
                taken.update(range(start, end))
        return chosen

    def __call__(self, doc: Doc) -> Doc:
        any_case = self._longest_first(self.matchers["LOWER"](doc))
        taken = {i for _, start, end in any_case for i in range(start, end)}
        as_written = [m for m in self._longest_first(self.matchers["ORTH"](doc))
                      if not taken.intersection(range(m[1], m[2]))]
        spans = []
        for key, start, end in sorted(any_case + as_written, key=lambda m: m[1]):
            label, concept = self.meaning[key]
            spans.append(Span(doc, start, end, label=label, span_id=concept))
        doc.ents = spans
        return doc


@Language.factory("concept_matcher")
def _make_matcher(nlp: Language, name: str,
                  patterns: list) -> ConceptMatcher:  # type: ignore[type-arg]
    # typed loosely on purpose: spaCy checks a factory's config against its annotations item by
    # item, which for thousands of patterns would add a second to every start
    return ConceptMatcher(nlp, patterns)


# Pieces of text between spaces the tokenizer remembers how to split. spaCy's default, 10,000,
# is full after a few hundred abstracts (1,693 of them hold 35,656 different pieces), and the
# pieces met later are split anew each time: with room for more, one pass over those abstracts
# tokenises in a fifth less time. A cached piece costs about 300 bytes: 30 MB when full.
TOKENIZER_CACHE = 100_000


def build_pipeline(concepts: tuple[Concept, ...] | None = None) -> Language:
    concepts = concepts or vocabulary()
    nlp = spacy.blank("en")
    nlp.tokenizer.max_cache_size = TOKENIZER_CACHE
    nlp.add_pipe("concept_matcher", config={
        "patterns": [p for c in concepts for p in patterns_for(c)],
    })
    nlp.add_pipe("concept_rules", config={
        "sites": {site.lower(): c.slug for c in concepts for site in c.sites},
        "ambiguous": sorted({form for c in concepts for form in c.ambiguous}),
    })
    nlp.tokenizer = TextKeepingTokenizer(nlp.tokenizer)
    return nlp


@Language.factory("concept_rules")
def _make_rules(nlp: Language, name: str, sites: dict[str, str],
                ambiguous: list[str]) -> ConceptRules:
    return ConceptRules(sites, frozenset(ambiguous))


@lru_cache(maxsize=1)
def get_pipeline() -> Language:
    return build_pipeline()
