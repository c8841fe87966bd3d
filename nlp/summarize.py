"""Extractive summaries: the two or three sentences that carry the finding, in text order.

A structured abstract (BACKGROUND: … METHODS: … RESULTS: … CONCLUSIONS: …, or the Spanish
labels) is summarised from its results and conclusions alone, the labels left out; any other
text from its sentences that name concepts and speak of findings, the lead weighing most.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_WORDS = 60
MAX_SENTENCES = 3

# Words that tend to mark the sentence holding a result or a decision, in English and Spanish,
# matched in lower-cased text (the lookahead lets the engine skip most positions at once).
_FINDING = re.compile(
    r"\b(?=[a-z\d])(?:(?:result|found|show|approv|respon|surviv|remission|efficacy|improv|"
    r"reduc|cleared|conclu|significant|hazard|median|durable|trial|phase|resultado|aprob|"
    r"respuesta|supervivencia|ensayo|eficacia)\w*|\d+(?:\.\d+)?\s?%)"
)


def _findings(text: str) -> int:
    return len(_FINDING.findall(text.lower()))

# Section labels of structured abstracts, as PubMed and journals print them.
_SECTION = re.compile(r"^\s*([A-Z][A-Za-zÁÉÍÓÚáéíóúñ ]{2,40}?)\s*:\s+")
_FINDING_SECTIONS = frozenset({
    "results", "findings", "main results", "conclusion", "conclusions", "interpretation",
    "conclusions and relevance", "authors' conclusions", "implications",
    "resultados", "conclusión", "conclusiones", "hallazgos",
})
_OTHER_SECTIONS = frozenset({
    "background", "introduction", "purpose", "aim", "aims", "objective", "objectives",
    "context", "importance", "rationale", "methods", "method", "materials and methods",
    "patients and methods", "design", "setting", "participants", "interventions",
    "main outcome measures", "measurements", "study design", "experimental design",
    "trial registration", "funding", "limitations",
    "antecedentes", "introducción", "objetivo", "objetivos", "métodos", "método",
    "material y métodos", "pacientes y métodos", "diseño", "financiación",
})
_CONCLUSION_SECTIONS = frozenset({
    "conclusion", "conclusions", "interpretation", "conclusions and relevance",
    "authors' conclusions", "implications", "conclusión", "conclusiones",
})


# A sentence ends at a full stop, question or exclamation mark (with any closing quotes or
# brackets) followed by space and what can open a sentence: a capital, a digit or a gene-like
# word (apoB, p53, mRNA); or at a line break (headings and list items have no full stop).
# "5.2 mg", "e.g. in" and "vs. placebo" end none.
_BOUNDARY = re.compile(
    r"[.!?]+[\"'”’)\]]*(\s+)(?=[\"'“‘(\[¿¡]?(?:[A-ZÁÉÍÓÚÑ0-9]|[a-z]+[A-Z0-9]))"
    r"|\n\s*"
)


def split_sentences(text: str) -> list[tuple[int, int]]:
    """The (start, end) character offsets of TEXT's sentences, surrounding space left out."""
    spans, start = [], 0
    for match in _BOUNDARY.finditer(text):
        end = match.start(1) if match.group(1) is not None else match.start()
        sentence = text[start:end].rstrip()  # the space before a line break
        if sentence.strip():
            spans.append((start, start + len(sentence)))
        start = match.end()
    rest = text[start:].rstrip()
    if rest.strip():
        spans.append((start, start + len(rest)))
    return spans


@dataclass(frozen=True)
class Sentence:
    text: str
    entities: int


@dataclass
class _Candidate:
    index: int
    text: str
    words: int
    score: float
    _vocabulary: frozenset[str] | None = None

    def vocabulary(self) -> frozenset[str]:
        if self._vocabulary is None:
            self._vocabulary = frozenset(_WORD.findall(self.text.lower()))
        return self._vocabulary


_WORD = re.compile(r"\w+")
REPEAT = 0.5  # share of words in common that makes a sentence a repeat of a chosen one


def _section(text: str) -> tuple[str | None, str]:
    """The known section label TEXT opens with (lower-cased) and the text after it."""
    match = _SECTION.match(text)
    if match:
        label = match.group(1).strip().lower()
        if label in _FINDING_SECTIONS or label in _OTHER_SECTIONS:
            return label, text[match.end():]
    return None, text


def _score(index: int, sentence: Sentence, words: int) -> float:
    score = 2.0 * min(sentence.entities, 3) + _findings(sentence.text)
    score += {0: 2.5, 1: 1.0}.get(index, 0.0)  # news puts the finding up front
    if words < 6:
        score -= 3
    elif words > 45:
        score -= 1
    return score


def _candidates(sentences: list[Sentence]) -> list[_Candidate]:
    sections = [_section(s.text) for s in sentences]
    if sum(label is not None for label, _ in sections) >= 2:  # a structured abstract
        candidates, current = [], None
        for index, (sentence, (label, rest)) in enumerate(zip(sentences, sections, strict=True)):
            current = label or current
            if current in _FINDING_SECTIONS and rest.strip():
                score = 2.0 * min(sentence.entities, 3) + _findings(rest)
                if current in _CONCLUSION_SECTIONS:  # its first sentence comes first
                    score += 20 if label else 1
                candidates.append(_Candidate(index, rest, len(rest.split()), score))
        if candidates:
            return candidates
    return [
        _Candidate(index, s.text, words, _score(index, s, words))
        for index, s in enumerate(sentences)
        if (words := len(s.text.split()))
    ]


def _repeats(candidate: _Candidate, chosen: list[_Candidate]) -> bool:
    """Whether CANDIDATE mostly says again what a chosen sentence says (a standfirst and the
    lead paragraph often do)."""
    words = candidate.vocabulary()
    for other in chosen:
        theirs = other.vocabulary()
        if words and theirs and len(words & theirs) / min(len(words), len(theirs)) >= REPEAT:
            return True
    return False


def _truncate(text: str, max_words: int) -> str:
    words = text.split()
    return text if len(words) <= max_words else " ".join(words[:max_words]).rstrip(",;:") + "…"


def summarize(sentences: list[Sentence], max_words: int = MAX_WORDS) -> str:
    ranked = sorted(_candidates(sentences), key=lambda c: c.score, reverse=True)
    chosen: list[_Candidate] = []
    words = 0
    for candidate in ranked:
        if chosen and (words + candidate.words > max_words or candidate.score <= 0
                       or _repeats(candidate, chosen)):
            continue
        chosen.append(candidate)
        words += candidate.words
        if len(chosen) == MAX_SENTENCES or words >= max_words:
            break
    chosen.sort(key=lambda c: c.index)
    return _truncate(" ".join(" ".join(c.text.split()) for c in chosen), max_words)
