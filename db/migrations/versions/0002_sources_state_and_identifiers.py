"""Source crawl state (conditional GET, health, backoff) and work identifiers on articles.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from db.fts_sqlite import TEXT_COLUMNS, create_triggers
from db.models import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

IDENTIFIERS = ("doi", "pmid", "pmcid", "nct_id")


# Plain ADD COLUMN and unique indexes: both backends do them in place, so SQLite does not rebuild
# the articles table (which would drop the full-text triggers).
SOURCE_COLUMNS = (
    ("etag", sa.Text),
    ("last_modified", sa.Text),
    ("last_attempt_at", UTCDateTime),
    ("next_attempt_at", UTCDateTime),
)


def upgrade() -> None:
    for name, type_ in SOURCE_COLUMNS:
        op.add_column("sources", sa.Column(name, type_))
    op.add_column("sources", sa.Column("consecutive_failures", sa.Integer, nullable=False,
                                       server_default="0"))
    op.add_column("sources", sa.Column("topical", sa.Boolean, nullable=False,
                                       server_default=sa.false()))
    op.add_column("articles", sa.Column("kind", sa.String(16), nullable=False,
                                        server_default="news"))
    for name in IDENTIFIERS:
        op.add_column("articles", sa.Column(name, sa.String(64)))
        op.create_index(f"ix_articles_{name}", "articles", [name], unique=True)
    op.add_column("articles", sa.Column("extra", sa.JSON, nullable=False, server_default="{}"))
    op.add_column("articles", sa.Column("relevance", sa.Float, nullable=False,
                                        server_default="1.0"))
    op.add_column("articles", sa.Column("filtered", sa.Boolean, nullable=False,
                                        server_default=sa.false()))
    op.create_index("ix_articles_kind", "articles", ["kind"])


def downgrade() -> None:
    op.drop_index("ix_articles_kind", "articles")
    for name in IDENTIFIERS:
        op.drop_index(f"ix_articles_{name}", "articles")
    with op.batch_alter_table("articles") as batch:
        for name in ("filtered", "relevance", "extra", *IDENTIFIERS, "kind"):
            batch.drop_column(name)
    with op.batch_alter_table("sources") as batch:
        for name in ("topical", "consecutive_failures", *(c for c, _ in SOURCE_COLUMNS)):
            batch.drop_column(name)
    if op.get_bind().dialect.name == "sqlite":
        create_triggers(op.execute, TEXT_COLUMNS)  # the batch rebuilt articles without them
