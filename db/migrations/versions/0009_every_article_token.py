"""The token every article holds: `articles.tag_terms` opens with "c0" (no concept has id 0),
so on SQLite a search whose words match most articles asks the full-text index for the few
they do not match ("c0 NOT ...") instead of reading every match's id (db/search.py). The
application writes it with the tags; an article written without it is still searched right,
only not by that shortcut (the listing index knows which articles lack it). PostgreSQL keeps
the same column values, for copies between backends.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from alembic import op

from db.fts_sqlite import COLUMNS, create_fts, drop_fts

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TOKEN = "c0"


def _rewrite(sql: str) -> None:
    """Rewrite every article's tag_terms with SQL, on SQLite with the full-text index dropped
    and built again once after (its triggers would otherwise index each article anew)."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        drop_fts(op.execute)
    op.execute(sql)
    if sqlite:
        create_fts(op.execute, COLUMNS)
        op.execute("INSERT INTO article_fts(article_fts) VALUES ('rebuild')")


def upgrade() -> None:
    find = "strpos" if op.get_bind().dialect.name == "postgresql" else "instr"
    _rewrite(f"UPDATE articles SET tag_terms = trim('{TOKEN} ' || tag_terms) "
             f"WHERE {find}(' ' || tag_terms || ' ', ' {TOKEN} ') = 0")


def downgrade() -> None:
    _rewrite(f"UPDATE articles SET tag_terms = trim(replace(' ' || tag_terms || ' ', "
             f"' {TOKEN} ', ' '))")
