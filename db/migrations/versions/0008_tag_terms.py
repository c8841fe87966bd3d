"""Concept tokens in the full-text index: `articles.tag_terms` holds a token per concept the
article is tagged with ("c12 c45"), and SQLite's FTS5 index gains it as a fourth column, so a
search for words among a concept's articles is one full-text query (FTS5 intersects the posting
lists) instead of a walk over every article the words match. The application writes the value
with the tags; triggers keep it right for any other writer (and do nothing when it already is).
PostgreSQL keeps the column for the same writers and copies between backends.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from alembic import op

from db.fts_sqlite import COLUMNS, TEXT_COLUMNS, create_fts, drop_fts

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_TOKEN_NEW = "' c' || new.concept_id || ' '"
_TOKEN_OLD = "' c' || old.concept_id || ' '"
_TERMS_OF = "' ' || (SELECT tag_terms FROM articles WHERE id = {}.article_id) || ' '"
SQLITE_TRIGGERS = {
    "article_tag_terms_insert": (
        f"AFTER INSERT ON article_concepts WHEN instr({_TERMS_OF.format('new')}, {_TOKEN_NEW}) = 0",
        f"UPDATE articles SET tag_terms = trim(tag_terms || {_TOKEN_NEW}) "
        "WHERE id = new.article_id;"),
    "article_tag_terms_delete": (
        f"AFTER DELETE ON article_concepts WHEN instr({_TERMS_OF.format('old')}, {_TOKEN_OLD}) > 0",
        f"UPDATE articles SET tag_terms = trim(replace(' ' || tag_terms || ' ', {_TOKEN_OLD}, ' '))"
        " WHERE id = old.article_id;"),
    "article_tag_terms_update": (
        "AFTER UPDATE OF article_id, concept_id ON article_concepts",
        f"UPDATE articles SET tag_terms = trim(replace(' ' || tag_terms || ' ', {_TOKEN_OLD}, ' '))"
        f" WHERE id = old.article_id; UPDATE articles SET tag_terms = trim(tag_terms || "
        f"{_TOKEN_NEW}) WHERE id = new.article_id "
        f"AND instr(' ' || tag_terms || ' ', {_TOKEN_NEW}) = 0;"),
}
PG_FUNCTION = """CREATE FUNCTION keep_tag_terms() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        UPDATE articles SET tag_terms = btrim(replace(' ' || tag_terms || ' ',
                                                      ' c' || OLD.concept_id || ' ', ' '))
        WHERE id = OLD.article_id
          AND strpos(' ' || tag_terms || ' ', ' c' || OLD.concept_id || ' ') > 0;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        UPDATE articles SET tag_terms = btrim(tag_terms || ' c' || NEW.concept_id)
        WHERE id = NEW.article_id
          AND strpos(' ' || tag_terms || ' ', ' c' || NEW.concept_id || ' ') = 0;
    END IF;
    RETURN NULL;
END $$"""


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute("ALTER TABLE articles ADD COLUMN tag_terms TEXT NOT NULL DEFAULT ''")
    if dialect == "postgresql":
        op.execute("UPDATE articles SET tag_terms = t.terms FROM (SELECT article_id, "
                   "string_agg('c' || concept_id, ' ') AS terms FROM article_concepts "
                   "GROUP BY article_id) t WHERE t.article_id = articles.id")
        op.execute(PG_FUNCTION)
        op.execute("CREATE TRIGGER article_tag_terms AFTER INSERT OR DELETE OR UPDATE OF "
                   "article_id, concept_id ON article_concepts FOR EACH ROW "
                   "EXECUTE FUNCTION keep_tag_terms()")
        return
    if dialect != "sqlite":
        return
    drop_fts(op.execute)  # first: the backfill need not touch the old index
    op.execute("UPDATE articles SET tag_terms = coalesce((SELECT group_concat('c' || concept_id,"
               " ' ') FROM article_concepts WHERE article_id = articles.id), '')")
    create_fts(op.execute, COLUMNS)
    op.execute("INSERT INTO article_fts(article_fts) VALUES ('rebuild')")
    for name, (event, body) in SQLITE_TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {event} BEGIN {body} END")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER article_tag_terms ON article_concepts")
        op.execute("DROP FUNCTION keep_tag_terms()")
    elif dialect == "sqlite":
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        drop_fts(op.execute)
        create_fts(op.execute, TEXT_COLUMNS)
        op.execute("INSERT INTO article_fts(article_fts) VALUES ('rebuild')")
    op.execute("ALTER TABLE articles DROP COLUMN tag_terms")
