"""A small language guess for the languages the vocabulary covers (English and Spanish).

Common function words count for their language, and a word with a Spanish accent or ñ counts
for Spanish; a language wins with at least two points and more than twice the other's, so a
short Spanish headline ("Tenía un cáncer de mama triple negativo") is recognised while an
English text quoting a Spanish name is not.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-záéíóúüñ]+")
_STOPWORDS = {
    "en": {"the", "and", "of", "with", "in", "to", "for", "is", "was", "were", "that", "on",
           "are", "by", "from", "has", "this", "an", "at", "be"},
    "es": {"el", "la", "los", "las", "de", "del", "y", "con", "en", "que", "por", "para", "una",
           "un", "se", "es", "son", "su", "sus", "como", "pero", "fue", "ha", "este", "esta"},
}
_SPANISH_LETTERS = re.compile(r"[áéíóúñ]")


def guess_language(text: str, default: str | None = None) -> str | None:
    words = _WORD.findall(text[:4000].lower())
    scores = {lang: sum(w in stops for w in words) for lang, stops in _STOPWORDS.items()}
    scores["es"] += sum(1 for w in words if _SPANISH_LETTERS.search(w))
    best, other = sorted(scores, key=lambda lang: scores[lang], reverse=True)
    if scores[best] < 2 or scores[best] <= 2 * scores[other]:
        return default
    return best
