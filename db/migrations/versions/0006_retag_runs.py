"""Re-tagging shared between processes and machines: a run over the id range, cut into chunks
that workers claim, so `immunofeed tag --rebuild` splits its work and resumes where it stopped.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

from db.models import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retag_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("vocabulary", sa.String(64), nullable=False),
        sa.Column("chunk_size", sa.Integer, nullable=False),
        sa.Column("last_id", sa.Integer, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime),
    )
    op.create_table(
        "retag_chunks",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("retag_runs.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("chunk", sa.Integer, primary_key=True),
        sa.Column("worker", sa.String(120), nullable=False),
        sa.Column("claimed_at", UTCDateTime, nullable=False),
        sa.Column("done_at", UTCDateTime),
        sa.Column("articles", sa.Integer, nullable=False, server_default="0"),
        sa.Column("changed", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("retag_chunks")
    op.drop_table("retag_runs")
