"""A small language guess for the languages the vocabulary covers (English and Spanish)."""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-záéíóúüñ]+")
_STOPWORDS = {
    "en": {"the", "and", "of", "with", "in", "to", "for", "is", "was", "were", "that", "on"},
    "es": {"el", "la", "los", "las", "de", "del", "y", "con", "en", "que", "por", "para", "una"},
}


def guess_language(text: str, default: str | None = None) -> str | None:
    words = _WORD.findall(text[:4000].lower())
    scores = {lang: sum(w in stops for w in words) for lang, stops in _STOPWORDS.items()}
    best = max(scores, key=lambda lang: scores[lang])
    if scores[best] < 3:
        return default
    return best
