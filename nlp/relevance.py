"""How much an article is about cancer immunotherapy, from its tags (0 to 1).

Immunotherapy mentions count most, then cancer types, then targets; a mention in the title
weighs most, in the lead (the first 400 characters of the body) next, elsewhere least. Comparator
therapies (chemotherapy, radiotherapy, targeted therapy) do not count as immunotherapy.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from nlp.vocabulary import by_slug

if TYPE_CHECKING:  # only the type: the crawler's process imports this without spaCy
    from nlp.tagger import Entity

THRESHOLD = 0.35  # below it, an article from a general source is filtered out
LEAD_CHARS = 400


def kept_out(relevance: float, topical_source: bool) -> bool:
    """Whether an article is stored as filtered: off-topic, from a source not topical as a
    whole (a PubMed query keeps everything it returns)."""
    return not topical_source and relevance < THRESHOLD


_WEIGHTS = {  # (title, lead, elsewhere) for each kind of mention
    "immunotherapy": (3.0, 2.0, 1.0),
    "CANCER": (1.5, 1.0, 0.5),
    "TARGET": (0.5, 0.5, 0.25),
}
_FULL_SCORE = 5.0


@cache
def is_immunotherapy(slug: str) -> bool:
    concepts = by_slug()
    seen = set()
    while slug and slug not in seen:
        if slug == "immunotherapy":
            return True
        seen.add(slug)
        slug = concepts[slug].parent if slug in concepts else None  # type: ignore[assignment]
    return False


def relevance(entities: list[Entity], title_length: int) -> float:
    """ENTITIES as annotate_article gives them (offsets in f"{title}\\n\\n{body}")."""
    body_start = title_length + 2
    score = 0.0
    counted: set[tuple[str, int]] = set()  # each concept once per place
    for e in entities:
        if e.label == "THERAPY":
            if not is_immunotherapy(e.concept):
                continue
            kind = "immunotherapy"
        else:
            kind = e.label
        place = 0 if e.start < title_length else 1 if e.start < body_start + LEAD_CHARS else 2
        if (e.concept, place) in counted:
            continue
        counted.add((e.concept, place))
        score += _WEIGHTS[kind][place]
    return round(min(1.0, score / _FULL_SCORE), 3)
