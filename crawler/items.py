"""What a spider hands to the pipelines."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class ArticleItem:
    url: str
    title: str
    body: str = ""
    source: str = ""
    published_at: datetime | None = None
    language: str | None = None
    kind: str = "news"  # news | paper | preprint | trial
    doi: str | None = None
    pmid: str | None = None
    pmcid: str | None = None
    nct_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # filled in by the pipelines
    canonical_url: str = ""
    summary: str = ""
    mentions: dict[str, int] = field(default_factory=dict)
    signature: list[int] | None = None  # MinHash of the text, for near-duplicate stories
    topical: bool = False  # from a source whose every item is on topic
    relevance: float = 1.0
    filtered: bool = False
    # what a worker found for the title and body it analysed along with the page's extraction
    # (crawler.analysis.extract_and_analyse); used when the item still has that text
    analysed: Analysed | None = None


@dataclass(frozen=True)
class Analysed:
    title: str
    body: str
    tags: Any  # crawler.analysis.Tags
    signature: list[int] | None
