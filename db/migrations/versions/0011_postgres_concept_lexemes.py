"""PostgreSQL: every article's search vector also holds a lexeme per concept it is tagged with
("concept 12", from tag_terms; no reader's words can make it), so that a search among a
concept's articles asks the GIN index for 'concept 12' & words instead of looking each of the
concept's articles up by id (db/search.py). SQLite's full-text index has held the same tokens
since 0008; nothing to do there.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29
"""

from alembic import op

from db.pg_vector import CONCEPTS, EVERY_ARTICLE, WORDS, replace_search_vector

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        replace_search_vector(op.execute, WORDS + EVERY_ARTICLE + CONCEPTS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        replace_search_vector(op.execute, WORDS + EVERY_ARTICLE)
