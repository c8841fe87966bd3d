"""What a cancer mention says about the disease besides its type: the setting (metastatic,
relapsed...), the stage and biomarker status. "metastatic HER2-negative breast cancer" is a
mention of breast cancer whose attributes are {"setting": ["metastatic"], "status": {"her2":
"negative"}}; the mention's span and concept stay those of the cancer type.

English puts these words before the cancer name ("stage III, EGFR-mutant NSCLC"), Spanish after
it ("cáncer de mama metastásico HER2 negativo"); both are read, a run of modifiers at a time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# setting words as written -> the attribute's value
_SETTINGS_EN = {
    "metastatic": "metastatic", "advanced": "advanced", "locally advanced": "locally-advanced",
    "locally-advanced": "locally-advanced", "recurrent": "recurrent", "relapsed": "relapsed",
    "refractory": "refractory", "unresectable": "unresectable", "resectable": "resectable",
    "inoperable": "unresectable", "operable": "resectable", "early-stage": "early-stage",
    "early stage": "early-stage", "limited-stage": "limited-stage",
    "limited stage": "limited-stage", "extensive-stage": "extensive-stage",
    "extensive stage": "extensive-stage", "newly diagnosed": "newly-diagnosed",
    "newly-diagnosed": "newly-diagnosed", "previously treated": "previously-treated",
    "previously untreated": "untreated", "untreated": "untreated",
    "treatment-naive": "untreated", "treatment-naïve": "untreated", "high-risk": "high-risk",
    "localized": "localised", "localised": "localised",
}
_SETTINGS_ES = {
    "metastásico": "metastatic", "metastásica": "metastatic", "metastásicos": "metastatic",
    "metastásicas": "metastatic", "avanzado": "advanced", "avanzada": "advanced",
    "avanzados": "advanced", "avanzadas": "advanced", "localmente avanzado": "locally-advanced",
    "localmente avanzada": "locally-advanced", "recurrente": "recurrent",
    "recurrentes": "recurrent", "recidivante": "relapsed", "en recaída": "relapsed",
    "refractario": "refractory", "refractaria": "refractory", "refractarios": "refractory",
    "refractarias": "refractory", "irresecable": "unresectable", "irresecables": "unresectable",
    "resecable": "resectable", "resecables": "resectable",
}
_STATUS_VALUES = {
    "positive": "positive", "+": "positive", "negative": "negative", "-": "negative",
    "−": "negative", "–": "negative", "low": "low", "high": "high", "mutant": "mutated",
    "mutated": "mutated", "mutation-positive": "mutated", "amplified": "amplified",
    "deficient": "deficient", "proficient": "proficient", "wild-type": "wild-type",
    "overexpressing": "positive", "expressing": "positive", "rearranged": "rearranged",
    "positivo": "positive", "positiva": "positive", "negativo": "negative",
    "negativa": "negative", "mutado": "mutated", "mutada": "mutated",
}
# markers named in words rather than by a vocabulary target
_NAMED_MARKERS = {
    "er": "estrogen-receptor", "estrogen receptor": "estrogen-receptor",
    "oestrogen receptor": "estrogen-receptor", "pr": "progesterone-receptor",
    "pgr": "progesterone-receptor", "progesterone receptor": "progesterone-receptor",
    "hr": "hormone-receptor", "hormone receptor": "hormone-receptor",
    "hormone-receptor": "hormone-receptor", "re": "estrogen-receptor",
    "rh": "hormone-receptor", "rp": "progesterone-receptor",
}


def _alternatives(words: Mapping[str, str] | list[str]) -> str:
    return "|".join(re.escape(w).replace(r"\ ", r"\s+")
                    for w in sorted(words, key=len, reverse=True))


_RECEPTOR = r"(?:o?estrogen|progesterone|hormone|androgen)[\s-]receptor"
# a biomarker: a receptor named in words, or a symbol with a capital (HER2, PD-L1, dMMR, ER/PR)
_MARKER = (rf"(?:{_RECEPTOR}|[a-z]?[A-Z][A-Za-z0-9]*(?:-[A-Z0-9][A-Za-z0-9]*)?"
           rf"(?:/[a-z]?[A-Z][A-Za-z0-9]*)*)")
_STATUS_EN = (rf"(?P<marker>{_MARKER})(?:\s*[-\s]\s*(?P<word>"
              rf"{_alternatives([w for w in _STATUS_VALUES if w.isascii() and len(w) > 1])})"
              r"|(?P<sign>[+\-−–])(?=[\s,/]))")
_STAGE = r"(?:[0IV]{1,4}|[0-4])[A-C]?\d?"
_STAGES = (rf"(?i:stage)s?\s+(?P<stages>{_STAGE}(?:\s*(?:-|–|/|,|to|and|or)\s*"
           rf"(?:(?i:stage)\s+)?{_STAGE})*)")
# biomarker states written as one symbol
_STANDALONE = {
    "MSI-H": ("msi", "high"), "MSI-high": ("msi", "high"), "MSI-L": ("msi", "low"),
    "MSS": ("msi", "stable"), "dMMR": ("mmr", "deficient"), "pMMR": ("mmr", "proficient"),
    "TMB-H": ("tmb", "high"), "TMB-high": ("tmb", "high"),
}
_BEFORE_ONE = (rf"(?<![\w-])(?:(?P<setting>(?i:{_alternatives(_SETTINGS_EN)}))|{_STAGES}"
               rf"|(?P<standalone>{_alternatives(_STANDALONE)})(?![\w-])|{_STATUS_EN})")
# one modifier ending where the mention (or the previous modifier) begins
_BEFORE_LAST = re.compile(rf"{_BEFORE_ONE}(?P<sep>\s*,\s*|\s+(?:and|or)\s+|\s*/\s*|\s+)$")
_AFTER_ONE = re.compile(
    rf"^(?P<sep>\s*,\s*|\s+y\s+|\s+)(?:(?P<setting>(?i:{_alternatives(_SETTINGS_ES)}))"
    rf"|(?i:en\s+estadio)\s+(?P<stages>{_STAGE}(?:\s*(?:-|–|/|,|y|o)\s*{_STAGE})*)"
    rf"|(?P<marker>{_MARKER})\s+(?P<word>(?i:positiv[oa]s?|negativ[oa]s?|mutad[oa]s?)))"
    r"(?![\w])")
_STAGE_SPLIT = re.compile(r"\s*(?:-|–|/|,|to|and|or|y|o)\s*(?:(?i:stage)\s+)?")
LOOK_BEHIND = 160  # characters before a mention that may hold its modifiers
LOOK_AHEAD = 120


def _marker_names(marker: str, targets: Mapping[str, str]) -> list[str]:
    names = []
    for part in marker.split("/"):
        key = " ".join(part.lower().replace("-receptor", " receptor").split())
        names.append(targets.get(part) or targets.get(key) or _NAMED_MARKERS.get(key, key))
    return names


def _record(found: dict[str, object], match: re.Match[str],
            targets: Mapping[str, str]) -> None:
    setting = match.group("setting")
    if setting:
        key = " ".join(setting.lower().split())
        value = _SETTINGS_EN.get(key) or _SETTINGS_ES[key]
        settings = found.setdefault("setting", [])
        if value not in settings:  # type: ignore[operator]
            settings.insert(0, value)  # type: ignore[attr-defined]
    elif match.group("stages"):
        stages = found.setdefault("stage", [])
        for stage in _STAGE_SPLIT.split(match.group("stages").strip()):
            if stage and stage not in stages:  # type: ignore[operator]
                stages.append(stage)  # type: ignore[attr-defined]
    elif match.groupdict().get("standalone"):
        name, value = _STANDALONE[match.group("standalone")]
        found.setdefault("status", {}).setdefault(name, value)  # type: ignore[attr-defined]
    else:
        word = (match.groupdict().get("word") or match.groupdict().get("sign") or "").lower()
        value = _STATUS_VALUES.get(word) or _STATUS_VALUES.get(word.rstrip("s"))
        if value:
            status = found.setdefault("status", {})
            for name in _marker_names(match.group("marker"), targets):
                status.setdefault(name, value)  # type: ignore[attr-defined]


def cancer_attributes(text: str, start: int, end: int,
                      targets: Mapping[str, str] | None = None) -> dict[str, object]:
    """The attributes the words around TEXT[START:END], a cancer mention, give it. TARGETS maps
    target mentions' text to their concept slugs (HER2 -> her2), so markers are named as the
    vocabulary names them."""
    targets = targets or {}
    found: dict[str, object] = {}
    prefix = text[max(0, start - LOOK_BEHIND):start]
    first = True
    while prefix:
        match = _BEFORE_LAST.search(prefix)
        if match is None or (first and match.group("sep").strip()):
            break
        _record(found, match, targets)
        prefix, first = prefix[:match.start()], False
    position = end
    while position < len(text):
        match = _AFTER_ONE.match(text[position:position + LOOK_AHEAD])
        if match is None:
            break
        _record(found, match, targets)
        position += match.end()
    if "stage" in found:
        found["stage"].sort(key=_stage_order)  # type: ignore[attr-defined]
    return found


def _stage_order(stage: str) -> tuple[int, str]:
    roman = {"0": 0, "I": 1, "II": 2, "III": 3, "IV": 4}
    head = stage.rstrip("ABC0123456789") or stage[:1]
    return (roman.get(head, int(head) if head.isdecimal() else 9), stage)
