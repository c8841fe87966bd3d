"""Builds the spaCy pipeline: a blank English tokenizer, an entity ruler fed from the
vocabulary, and a rule-based sentencizer for summaries."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import spacy
from spacy.language import Language
from spacy.tokens import Doc

from nlp.vocabulary import Concept, surface_forms, vocabulary


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


def patterns_for(nlp: Language, concept: Concept) -> list[dict[str, Any]]:
    patterns: list[dict[str, Any]] = []
    for form in surface_forms(concept):
        if is_case_sensitive(form):
            pattern: Any = [{"ORTH": token.text} for token in nlp.make_doc(form)]
        else:
            pattern = form
        patterns.append({"label": concept.label, "pattern": pattern, "id": concept.slug})
    return patterns


def build_pipeline(concepts: tuple[Concept, ...] | None = None) -> Language:
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe(
        "entity_ruler", config={"phrase_matcher_attr": "LOWER", "overwrite_ents": True}
    )
    patterns = [p for c in (concepts or vocabulary()) for p in patterns_for(nlp, c)]
    ruler.add_patterns(patterns)  # type: ignore[attr-defined]
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("paragraph_breaks")
    return nlp


@lru_cache(maxsize=1)
def get_pipeline() -> Language:
    return build_pipeline()
