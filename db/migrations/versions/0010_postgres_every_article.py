"""PostgreSQL: every article's search vector also holds a lexeme no reader's words can make,
"every article" (a space inside one lexeme: the parsers split words at spaces), so that a
search whose words match most articles asks the GIN index for the few they do not match
('every article' & !words) instead of visiting every matching row for its id (db/search.py).
The vector is a generated column, which PostgreSQL 15 cannot alter: it is dropped and added
again with its index (a rewrite of the table). SQLite's full-text index has its own token
since 0009; nothing to do there.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_WORDS = """
    setweight(to_tsvector('english', coalesce(title, '')), 'A') ||
    setweight(to_tsvector('english', coalesce(summary, '')), 'B') ||
    setweight(to_tsvector('english', coalesce(body, '')), 'C')"""
_EVERY_ARTICLE = " || '''every article'''::tsvector"


def _vector(expression: str) -> None:
    op.execute("DROP INDEX ix_articles_search_vector")
    op.execute("ALTER TABLE articles DROP COLUMN search_vector")
    op.execute(f"ALTER TABLE articles ADD COLUMN search_vector tsvector GENERATED ALWAYS AS "
               f"({expression}) STORED")
    op.execute("CREATE INDEX ix_articles_search_vector ON articles USING GIN (search_vector)")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _vector(_WORDS + _EVERY_ARTICLE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _vector(_WORDS)
