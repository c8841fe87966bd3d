"""What a spider hands to the pipelines."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class ArticleItem:
    url: str
    title: str
    body: str = ""
    source: str = ""
    published_at: datetime | None = None
    language: str | None = None
    # filled in by the pipelines
    canonical_url: str = ""
    summary: str = ""
    mentions: dict[str, int] = field(default_factory=dict)
