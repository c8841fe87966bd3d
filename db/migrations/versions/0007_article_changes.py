"""A log of which articles changed, for the listing index each web process keeps in memory
(db/listing.py): triggers add the article's id whenever it is added, deleted, re-tagged or has a
listing field changed (kind, source, dates, story, filtered); a change to the concepts adds 0,
which asks for the whole index to be built again. On PostgreSQL each entry also carries its
transaction's id, since entries of concurrent writers become visible out of sequence order.
A migration that rebuilds one of these tables on SQLite must create its triggers again.

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


PG_LOG = """CREATE FUNCTION log_article_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'concepts' THEN
        INSERT INTO article_changes (article_id) VALUES (0);
    ELSIF TG_TABLE_NAME = 'articles' THEN
        INSERT INTO article_changes (article_id)
        VALUES (CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END);
    ELSE
        IF TG_OP <> 'INSERT' THEN
            INSERT INTO article_changes (article_id) VALUES (OLD.article_id);
        END IF;
        IF TG_OP <> 'DELETE' THEN
            INSERT INTO article_changes (article_id) VALUES (NEW.article_id);
        END IF;
    END IF;
    RETURN NULL;
END $$"""
PG_TRIGGERS = {
    "article_changes_added_or_deleted": "AFTER INSERT OR DELETE ON articles FOR EACH ROW",
    "article_changes_update": ("AFTER UPDATE OF kind, source_id, published_at, fetched_at, "
                               "added_at, story_id, filtered ON articles FOR EACH ROW"),
    "article_concepts_changes": "AFTER INSERT OR UPDATE OR DELETE ON article_concepts "
                                "FOR EACH ROW",
    "concepts_changes": "AFTER INSERT OR UPDATE OR DELETE ON concepts FOR EACH STATEMENT",
}


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE TABLE article_changes (seq bigserial PRIMARY KEY, "
                   "article_id bigint NOT NULL, "
                   "xid xid8 NOT NULL DEFAULT pg_current_xact_id(), "
                   "at timestamptz NOT NULL DEFAULT now())")
        op.execute("CREATE INDEX ix_article_changes_xid ON article_changes (xid)")
        op.execute("CREATE INDEX ix_article_changes_at ON article_changes (at)")
        op.execute(PG_LOG)
        for name, event in PG_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {event} EXECUTE FUNCTION log_article_change()")
        return
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("CREATE TABLE article_changes ("
               "seq INTEGER PRIMARY KEY AUTOINCREMENT, article_id INTEGER NOT NULL)")
    for name, (event, article_id) in TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {event} BEGIN "
                   f"INSERT INTO article_changes (article_id) VALUES ({article_id}); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, event in PG_TRIGGERS.items():
            op.execute(f"DROP TRIGGER {name} ON {event.split(' ON ')[1].split()[0]}")
        op.execute("DROP FUNCTION log_article_change()")
        op.execute("DROP TABLE article_changes")
        return
    if op.get_bind().dialect.name != "sqlite":
        return
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute("DROP TABLE article_changes")
