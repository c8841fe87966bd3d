"""Email digests: subscribers, one delivery row per (subscriber, period), confirmation sends
(for the per-address limit), the site's secret, and when each article was first stored.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from db.models import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # when the article was first stored: a digest lists what is new since the last one, and
    # fetched_at moves whenever a re-crawl changes an article
    op.add_column("articles", sa.Column("added_at", UTCDateTime))
    op.execute("UPDATE articles SET added_at = fetched_at")
    op.create_index("ix_articles_added_at", "articles", ["added_at"])
    op.create_table(
        "subscribers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("topics", sa.JSON, nullable=False),
        sa.Column("frequency", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("paused_reason", sa.String(16)),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("confirmed_at", UTCDateTime, nullable=False),
        sa.Column("bounces", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
    )
    op.create_index("ix_subscribers_status_frequency", "subscribers", ["status", "frequency"])
    op.create_table(
        "digest_deliveries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("subscriber_id", sa.Integer,
                  sa.ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("period", sa.String(24), nullable=False),
        sa.Column("since", UTCDateTime, nullable=False),
        sa.Column("until", UTCDateTime, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("message_id", sa.String(250), nullable=False),
        sa.Column("items", sa.Integer, nullable=False, server_default="0"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("sent_at", UTCDateTime),
        sa.UniqueConstraint("subscriber_id", "period", name="uq_delivery_subscriber_period"),
    )
    op.create_index("ix_digest_deliveries_period", "digest_deliveries", ["period", "status"])
    op.create_table(
        "confirmation_sends",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("address_hash", sa.String(64), nullable=False, index=True),
        sa.Column("sent_at", UTCDateTime, nullable=False, index=True),
    )
    op.create_table(
        "app_secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(200), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("app_secrets")
    op.drop_table("confirmation_sends")
    op.drop_table("digest_deliveries")
    op.drop_table("subscribers")
    op.drop_index("ix_articles_added_at", "articles")
    # no batch rebuild of articles (it would drop SQLite's full-text triggers): the column
    # stays, unused, on SQLite before 3.35
    op.drop_column("articles", "added_at")
