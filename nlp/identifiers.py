"""Identifiers of papers and trials cited in text: DOIs, PMIDs, NCT ids."""

from __future__ import annotations

import re

_DOI = re.compile(r"\b(10\.\d{4,9}/[^\s\"'<>]+)")
_PMID = re.compile(r"\bPMID:?\s*(\d{5,9})\b", re.IGNORECASE)
_NCT = re.compile(r"\b(NCT\d{8})\b")


def cited_identifiers(text: str) -> dict[str, list[str]]:
    """{"doi": [...], "pmid": [...], "nct_id": [...]}, each in order of first mention, only the
    kinds found. DOIs are lower-cased, as stored."""
    found = {
        "doi": [m.rstrip(".,;:)]").lower() for m in _DOI.findall(text)],
        "pmid": _PMID.findall(text),
        "nct_id": [m.upper() for m in _NCT.findall(text)],
    }
    return {kind: list(dict.fromkeys(ids)) for kind, ids in found.items() if ids}
