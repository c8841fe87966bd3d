"""Article dates in SQL, written once for SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import func
from sqlalchemy.orm import Session

from db.models import Article

# strftime patterns and their PostgreSQL to_char equivalents
_TO_CHAR = {"%Y": "YYYY", "%Y-%m": "YYYY-MM"}


def article_date() -> sa.ColumnElement[datetime]:
    """When an article appeared: published, or fetched when it gives no date."""
    return func.coalesce(Article.published_at, Article.fetched_at)


def date_text(session: Session, column: sa.ColumnElement[datetime],
              pattern: str) -> sa.ColumnElement[str]:
    """COLUMN as text by PATTERN ("%Y" or "%Y-%m"), in the session's database's own terms."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(column, _TO_CHAR[pattern])
    return func.strftime(pattern, column)
