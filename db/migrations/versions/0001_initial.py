"""Initial schema: sources, articles, concepts, article_concepts, and SQLite full-text search.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from db.fts_sqlite import TEXT_COLUMNS, create_fts, drop_fts
from db.models import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("last_crawled_at", UTCDateTime),
        sa.Column("last_error", sa.Text),
    )
    op.create_table(
        "articles",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("canonical_url", sa.String(2048), nullable=False, unique=True),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False, server_default=""),
        sa.Column("body", sa.Text, nullable=False, server_default=""),
        sa.Column("language", sa.String(16)),
        sa.Column("published_at", UTCDateTime),
        sa.Column("fetched_at", UTCDateTime, nullable=False),
        sa.Column("source_id", sa.Integer, sa.ForeignKey("sources.id", ondelete="SET NULL")),
    )
    op.create_index("ix_articles_published_at", "articles", ["published_at"])
    op.create_index("ix_articles_source_id", "articles", ["source_id"])
    op.create_table(
        "concepts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("slug", sa.String(200), nullable=False, unique=True),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("synonyms", sa.JSON, nullable=False),
        sa.Column("xrefs", sa.JSON, nullable=False),
        sa.Column("parent_slug", sa.String(200)),
    )
    op.create_index("ix_concepts_label", "concepts", ["label"])
    op.create_table(
        "article_concepts",
        sa.Column(
            "article_id",
            sa.Integer,
            sa.ForeignKey("articles.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "concept_id",
            sa.Integer,
            sa.ForeignKey("concepts.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("mentions", sa.Integer, nullable=False, server_default="1"),
    )
    op.create_index("ix_article_concepts_concept_id", "article_concepts", ["concept_id"])
    if op.get_bind().dialect.name == "sqlite":
        create_fts(op.execute, TEXT_COLUMNS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        drop_fts(op.execute)
    op.drop_table("article_concepts")
    op.drop_table("concepts")
    op.drop_table("articles")
    op.drop_table("sources")
