"""Article labels read from the text: what kind of news it is, the trial phase, the setting.

Rules over the title and the text, in English and Spanish: one pattern for each article type
and setting, and one for the trial phase.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_I = re.IGNORECASE

ARTICLE_TYPES: dict[str, re.Pattern[str]] = {
    "regulatory-approval": re.compile(
        r"\b(approv(?:es|ed|al)\b|granted (?:accelerated |conditional |full )?approval|"
        r"marketing authori[sz]ation|positive opinion|breakthrough therapy designation|"
        r"priority review|aprob(?:ó|ado|ada|ación)|autoriza(?:ción|do))", _I),
    "trial-result": re.compile(
        r"\b(met (?:its|the) primary endpoint|overall survival|progression-free survival|"
        r"(?:objective |overall |complete )?response rate|hazard ratio|event-free survival|"
        r"disease-free survival|supervivencia (?:global|libre)|tasa de respuesta)", _I),
    "preclinical": re.compile(
        r"\b(mice|mouse models?|murine|in vitro|xenografts?|preclinical|organoids?|"
        r"cell lines?|ratones|preclínic[oa])\b", _I),
    "review": re.compile(
        r"\b(systematic review|meta-analys[ie]s|narrative review|a review of|review article|"
        r"revisión sistemática|metaanálisis)\b", _I),
    "business": re.compile(
        r"\b(acquir(?:e|es|ed|ing|ition)|licens(?:e|ing) (?:deal|agreement)|"
        r"collaboration agreement|upfront payment|milestone payments?|financing round|"
        r"series [A-D] (?:round|financing)|initial public offering|merger|adquiere|adquisición)\b",
        _I),
    "guideline": re.compile(
        r"\b(guidelines?|consensus statement|practice recommendations?|NCCN|"
        r"guía(?:s)? clínica(?:s)?|recomendaciones)\b", _I),
}

_PHASE = re.compile(
    r"\b(?:phase|fase)[\s-]+(I{1,3}V?|IV|[1-4])(?:[ab])?(?:\s*(?:/|-|and|y)\s*(I{1,3}|[1-4]))?\b",
    _I)
_ROMAN = {"I": "1", "II": "2", "III": "3", "IV": "4"}

SETTINGS: dict[str, re.Pattern[str]] = {
    "metastatic": re.compile(r"\b(metasta(?:tic|sis|ses)|metastásic[oa]s?|stage IV)\b", _I),
    "adjuvant": re.compile(r"\b(adjuvant|adyuvante)\b", _I),
    "neoadjuvant": re.compile(r"\b(neoadjuvant|neoadyuvante|perioperative|preoperative|"
                              r"antes de la cirugía)\b", _I),
    "first-line": re.compile(r"\b(first-line|first line|frontline|front-line|treatment-naive|"
                             r"previously untreated|primera línea)\b", _I),
    "refractory": re.compile(r"\b(refractory|relapsed|previously treated|second-line|"
                             r"third-line|refractari[oa]s?|en recaída)\b", _I),
}


@dataclass
class Labels:
    types: list[str] = field(default_factory=list)
    phase: str | None = None
    settings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"types": self.types, "phase": self.phase, "settings": self.settings}


def trial_phase(text: str) -> str | None:
    """The first trial phase the text names: "3", or "1/2" for a combined phase."""
    match = _PHASE.search(text)
    if match is None:
        return None
    first, second = (_ROMAN.get(p.upper(), p) if p else None for p in match.groups())
    return f"{first}/{second}" if second else first


# news of an approval or a deal says so up front; later in the text it is background
_LEAD_ONLY = frozenset({"regulatory-approval", "business"})
_LEAD = 300


def article_labels(title: str, text: str) -> Labels:
    both = f"{title}\n{text}"
    lead = f"{title}\n{text[:_LEAD]}"
    types = [name for name, pattern in ARTICLE_TYPES.items()
             if pattern.search(lead if name in _LEAD_ONLY else both)]
    # an approval or a deal names a drug's trials in passing; a review cites mouse work
    if "review" in types or "regulatory-approval" in types:
        types = [t for t in types if t != "preclinical"]
    return Labels(
        types=types,
        phase=trial_phase(both),
        settings=[name for name, pattern in SETTINGS.items() if pattern.search(both)],
    )
