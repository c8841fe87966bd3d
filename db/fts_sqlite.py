"""The SQLite full-text index over articles, shared by the migrations that create or rebuild it.

External content over `articles`: porter stemming over unicode61 with diacritics folded, so
"tumours" finds "tumour" and "cancer" finds the Spanish "cáncer". Triggers keep it in sync.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Execute = Callable[[str], Any]

TABLE = """CREATE VIRTUAL TABLE article_fts USING fts5(
    title, summary, body,
    content='articles', content_rowid='id',
    tokenize='porter unicode61 remove_diacritics 2')"""

TRIGGERS = {
    "articles_fts_insert": """CREATE TRIGGER articles_fts_insert AFTER INSERT ON articles BEGIN
        INSERT INTO article_fts(rowid, title, summary, body)
        VALUES (new.id, new.title, new.summary, new.body);
    END""",
    "articles_fts_delete": """CREATE TRIGGER articles_fts_delete AFTER DELETE ON articles BEGIN
        INSERT INTO article_fts(article_fts, rowid, title, summary, body)
        VALUES ('delete', old.id, old.title, old.summary, old.body);
    END""",
    "articles_fts_update": """CREATE TRIGGER articles_fts_update
        AFTER UPDATE OF title, summary, body ON articles BEGIN
        INSERT INTO article_fts(article_fts, rowid, title, summary, body)
        VALUES ('delete', old.id, old.title, old.summary, old.body);
        INSERT INTO article_fts(rowid, title, summary, body)
        VALUES (new.id, new.title, new.summary, new.body);
    END""",
}


def create_triggers(execute: Execute) -> None:
    """(Re)create the triggers: needed again whenever the articles table is rebuilt."""
    drop_triggers(execute)
    for statement in TRIGGERS.values():
        execute(statement)


def drop_triggers(execute: Execute) -> None:
    for name in TRIGGERS:
        execute(f"DROP TRIGGER IF EXISTS {name}")


def create_fts(execute: Execute) -> None:
    execute(TABLE)
    create_triggers(execute)


def drop_fts(execute: Execute) -> None:
    drop_triggers(execute)
    execute("DROP TABLE IF EXISTS article_fts")
