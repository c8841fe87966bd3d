"""Builds the spaCy pipeline: a blank English tokenizer, two entity rulers fed from the
vocabulary, a rule-based sentencizer, and the rules that shape mentions (nlp/rules.py)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import spacy
from spacy.language import Language
from spacy.tokens import Doc

from nlp.rules import SPANISH_SUFFIX, ConceptRules
from nlp.vocabulary import Concept, spanish_forms, surface_forms, vocabulary


@Language.component("paragraph_breaks")
def paragraph_breaks(doc: Doc) -> Doc:
    """A line break always ends a sentence: headings and list items have no full stop."""
    for token in doc[:-1]:
        if token.is_space and "\n" in token.text:
            doc[token.i + 1].is_sent_start = True
    return doc


def is_case_sensitive(form: str) -> bool:
    """Short forms with two or more capitals (NSCLC, HCC, PD-1, mCRPC) match only as written,
    so ordinary words that share their letters are left alone."""
    return len(form) <= 6 and sum(ch.isupper() for ch in form) >= 2


def patterns_for(concept: Concept, exact: bool) -> list[dict[str, Any]]:
    """Phrase patterns of CONCEPT: the case-sensitive short forms, or all the others. Forms
    only Spanish uses carry a marker the rules resolve by the text's language."""
    english = list(surface_forms(concept))
    lowered = {form.lower() for form in english}
    spanish = [form for form in spanish_forms(concept) if form.lower() not in lowered]
    return [
        {"label": concept.label, "pattern": form, "id": concept.slug + suffix}
        for forms, suffix in ((english, ""), (spanish, SPANISH_SUFFIX))
        for form in forms
        if is_case_sensitive(form) == exact
    ]


def build_pipeline(concepts: tuple[Concept, ...] | None = None) -> Language:
    concepts = concepts or vocabulary()
    nlp = spacy.blank("en")
    # Two phrase-matching rulers (phrase matching is much faster than token patterns): short
    # forms as written first, then everything else in any case, which overwrites overlaps so
    # the longer mention wins ("CAR-T cell therapy" over "CAR-T").
    exact = nlp.add_pipe("entity_ruler", name="short_forms",
                         config={"phrase_matcher_attr": "ORTH", "overwrite_ents": True})
    exact.add_patterns([p for c in concepts for p in patterns_for(c, exact=True)])  # type: ignore[attr-defined]
    ruler = nlp.add_pipe(
        "entity_ruler", config={"phrase_matcher_attr": "LOWER", "overwrite_ents": True}
    )
    ruler.add_patterns([p for c in concepts for p in patterns_for(c, exact=False)])  # type: ignore[attr-defined]
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("paragraph_breaks")
    nlp.add_pipe("concept_rules", config={
        "sites": {site.lower(): c.slug for c in concepts for site in c.sites},
        "ambiguous": sorted({form for c in concepts for form in c.ambiguous}),
    })
    return nlp


@Language.factory("concept_rules")
def _make_rules(nlp: Language, name: str, sites: dict[str, str],
                ambiguous: list[str]) -> ConceptRules:
    return ConceptRules(sites, frozenset(ambiguous))


@lru_cache(maxsize=1)
def get_pipeline() -> Language:
    return build_pipeline()
