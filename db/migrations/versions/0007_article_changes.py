"""A log of which articles changed, for the listing index each web process keeps in memory
(db/listing.py): triggers add the article's id whenever it is added, deleted, re-tagged or has a
listing field changed (kind, source, dates, story, filtered); a change to the concepts adds 0,
which asks for the whole index to be built again. SQLite only for now: PostgreSQL deployments
list through SQL and have nothing to log.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# name -> (event and table, the article id it logs)
TRIGGERS = {
    "article_changes_insert": ("AFTER INSERT ON articles", "new.id"),
    "article_changes_update": ("AFTER UPDATE OF kind, source_id, published_at, fetched_at, "
                               "added_at, story_id, filtered ON articles", "new.id"),
    "article_changes_delete": ("AFTER DELETE ON articles", "old.id"),
    "article_concepts_insert": ("AFTER INSERT ON article_concepts", "new.article_id"),
    "article_concepts_delete": ("AFTER DELETE ON article_concepts", "old.article_id"),
    "article_concepts_update": ("AFTER UPDATE ON article_concepts", "new.article_id"),
    "article_concepts_moved": ("AFTER UPDATE OF article_id ON article_concepts",
                               "old.article_id"),
    "concepts_insert": ("AFTER INSERT ON concepts", "0"),
    "concepts_update": ("AFTER UPDATE ON concepts", "0"),
    "concepts_delete": ("AFTER DELETE ON concepts", "0"),
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("CREATE TABLE article_changes ("
               "seq INTEGER PRIMARY KEY AUTOINCREMENT, article_id INTEGER NOT NULL)")
    for name, (event, article_id) in TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {event} BEGIN "
                   f"INSERT INTO article_changes (article_id) VALUES ({article_id}); END")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute("DROP TABLE article_changes")
