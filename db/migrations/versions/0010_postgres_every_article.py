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

from db.pg_vector import EVERY_ARTICLE, WORDS, replace_search_vector

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        replace_search_vector(op.execute, WORDS + EVERY_ARTICLE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        replace_search_vector(op.execute, WORDS)
