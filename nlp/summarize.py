"""Extractive summaries: the two or three sentences that carry the finding, in text order."""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_WORDS = 60
MAX_SENTENCES = 3

# Words that tend to mark the sentence holding a result or a decision, in English and Spanish.
_FINDING = re.compile(
    r"\b(result|found|show|approv|respon|surviv|remission|efficacy|improv|reduc|cleared|"
    r"conclu|significant|hazard|median|durable|trial|phase|resultado|aprob|respuesta|"
    r"supervivencia|ensayo|eficacia)\w*|\d+(?:\.\d+)?\s?%",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Sentence:
    text: str
    entities: int


def _score(index: int, sentence: Sentence) -> float:
    words = len(sentence.text.split())
    score = 2.0 * min(sentence.entities, 3) + len(_FINDING.findall(sentence.text))
    score += {0: 2.5, 1: 1.0}.get(index, 0.0)  # news puts the finding up front
    if words < 6:
        score -= 3
    elif words > 45:
        score -= 1
    return score


_WORD = re.compile(r"\w+")
REPEAT = 0.5  # share of words in common that makes a sentence a repeat of a chosen one


def _repeats(sentence: Sentence, chosen: list[tuple[int, Sentence]]) -> bool:
    """Whether SENTENCE mostly says again what a chosen sentence says (a standfirst and the
    lead paragraph often do)."""
    words = set(_WORD.findall(sentence.text.lower()))
    for _, other in chosen:
        theirs = set(_WORD.findall(other.text.lower()))
        if words and theirs and len(words & theirs) / min(len(words), len(theirs)) >= REPEAT:
            return True
    return False


def _truncate(text: str, max_words: int) -> str:
    words = text.split()
    return text if len(words) <= max_words else " ".join(words[:max_words]).rstrip(",;:") + "…"


def summarize(sentences: list[Sentence], max_words: int = MAX_WORDS) -> str:
    candidates = [(i, s) for i, s in enumerate(sentences) if s.text.strip()]
    if not candidates:
        return ""
    ranked = sorted(candidates, key=lambda item: _score(*item), reverse=True)
    chosen: list[tuple[int, Sentence]] = []
    words = 0
    for index, sentence in ranked:
        length = len(sentence.text.split())
        if chosen and (words + length > max_words or _score(index, sentence) <= 0
                       or _repeats(sentence, chosen)):
            continue
        chosen.append((index, sentence))
        words += length
        if len(chosen) == MAX_SENTENCES or words >= max_words:
            break
    chosen.sort(key=lambda item: item[0])
    return _truncate(" ".join(" ".join(s.text.split()) for _, s in chosen), max_words)
