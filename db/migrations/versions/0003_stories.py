"""Near-duplicate stories: MinHash signatures, their LSH band keys, and articles' story.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the article that first carried a story; NULL for that first article itself
    op.add_column("articles", sa.Column("story_id", sa.Integer))
    op.create_index("ix_articles_story_id", "articles", ["story_id"])
    op.create_table(
        "article_signatures",
        sa.Column("article_id", sa.Integer, sa.ForeignKey("articles.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("signature", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "article_bands",
        sa.Column("band", sa.SmallInteger, primary_key=True),
        sa.Column("key", sa.BigInteger, primary_key=True),
        sa.Column("article_id", sa.Integer, sa.ForeignKey("articles.id", ondelete="CASCADE"),
                  primary_key=True),
    )
    op.create_index("ix_article_bands_article_id", "article_bands", ["article_id"])
    # keys are unique across bands (the band is hashed in), so lookups use this index alone
    op.create_index("ix_article_bands_key", "article_bands", ["key"])


def downgrade() -> None:
    op.drop_table("article_bands")
    op.drop_table("article_signatures")
    op.drop_index("ix_articles_story_id", "articles")
    with op.batch_alter_table("articles") as batch:
        batch.drop_column("story_id")
    if op.get_bind().dialect.name == "sqlite":
        from db.fts_sqlite import TEXT_COLUMNS, create_triggers

        create_triggers(op.execute, TEXT_COLUMNS)  # the batch rebuilt articles without them
