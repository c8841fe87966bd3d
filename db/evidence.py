"""Evidence a news story reports without an identifier: "a paper in Nature Medicine by <name>'s
team" is matched to a stored paper from that journal, published near the story, one of whose
authors the story names."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Article

WINDOW = timedelta(days=120)  # a story reports a paper within months of it


def journal_key(name: str) -> str:
    """How a journal is written in prose: no leading "The", no "(City)" qualifier, any case."""
    name = re.sub(r"\s*\([^)]*\)", "", name).strip().rstrip(".")
    name = re.sub(r"^the\s+", "", name, flags=re.IGNORECASE)
    return " ".join(name.lower().split())


def journal_names(session: Session) -> list[str]:
    """Journals of the stored papers whose names are specific enough to find in prose (two
    words or more: "Nature Medicine", not "Cancer")."""
    journal = Article.extra["journal"].as_string()
    names = session.scalars(select(journal).where(Article.kind == "paper").distinct())
    return [n for n in names if n and len(journal_key(n).split()) >= 2]


def _surnames(paper: Article) -> set[str]:
    names = [a.get("name", "") for a in (paper.extra or {}).get("authors") or []]
    return {n.split()[-1] for n in names if n and len(n.split()[-1]) >= 3}


def papers_named_in(session: Session, text: str, published_at: datetime | None,
                    journals: Iterable[str]) -> list[int]:
    """Ids of stored papers whose journal the text names along with one of their authors."""
    prose = " ".join(text.lower().split())
    found: list[int] = []
    for name in journals:
        if journal_key(name) not in prose:
            continue
        query = select(Article).where(Article.kind == "paper",
                                      Article.extra["journal"].as_string() == name)
        if published_at is not None:
            query = query.where(Article.published_at.between(published_at - WINDOW,
                                                             published_at + WINDOW))
        for paper in session.scalars(query):
            if any(re.search(rf"\b{re.escape(s)}\b", text) for s in _surnames(paper)):
                found.append(paper.id)
    return found
