"""The SQLite full-text index over articles, shared by the migrations that create or rebuild it.

External content over `articles`: porter stemming over unicode61 with diacritics folded, so
"tumours" finds "tumour" and "cancer" finds the Spanish "cáncer". Triggers keep it in sync.

Since migration 0008 it also indexes `tag_terms`: a token per concept the article is tagged
with ("c12"), so that a search for words among a concept's articles is one full-text query
whose posting lists FTS5 intersects. Readers' words are only ever matched in the text columns.
The migrations before 0008 build the index of their time: they pass TEXT_COLUMNS.

Since migration 0009 every article's `tag_terms` also opens with EVERY_ARTICLE, a token no
concept has (concept ids start at 1): a search whose words match most articles asks FTS5 for
the few they do not match ("c0 NOT ..."), a far shorter answer than every match (db/search.py).
Readers' words never reach it: "c0" typed in the search box is matched in the text columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Execute = Callable[[str], Any]

EVERY_ARTICLE = "c0"
TEXT_COLUMNS = ("title", "summary", "body")
COLUMNS = (*TEXT_COLUMNS, "tag_terms")
TRIGGER_NAMES = ("articles_fts_insert", "articles_fts_delete", "articles_fts_update")


def table_sql(columns: Sequence[str] = COLUMNS) -> str:
    return (f"CREATE VIRTUAL TABLE article_fts USING fts5({', '.join(columns)}, "
            "content='articles', content_rowid='id', "
            "tokenize='porter unicode61 remove_diacritics 2')")


def trigger_sql(columns: Sequence[str] = COLUMNS) -> dict[str, str]:
    names = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    add = f"INSERT INTO article_fts(rowid, {names}) VALUES (new.id, {new});"
    remove = (f"INSERT INTO article_fts(article_fts, rowid, {names}) "
              f"VALUES ('delete', old.id, {old});")
    return {
        "articles_fts_insert": f"CREATE TRIGGER articles_fts_insert AFTER INSERT ON articles "
                               f"BEGIN {add} END",
        "articles_fts_delete": f"CREATE TRIGGER articles_fts_delete AFTER DELETE ON articles "
                               f"BEGIN {remove} END",
        "articles_fts_update": f"CREATE TRIGGER articles_fts_update AFTER UPDATE OF {names} "
                               f"ON articles BEGIN {remove} {add} END",
    }


def create_triggers(execute: Execute, columns: Sequence[str] = COLUMNS) -> None:
    """(Re)create the triggers: needed again whenever the articles table is rebuilt."""
    drop_triggers(execute)
    for statement in trigger_sql(columns).values():
        execute(statement)


def drop_triggers(execute: Execute) -> None:
    for name in TRIGGER_NAMES:
        execute(f"DROP TRIGGER IF EXISTS {name}")


def create_fts(execute: Execute, columns: Sequence[str] = COLUMNS) -> None:
    execute(table_sql(columns))
    create_triggers(execute, columns)


def drop_fts(execute: Execute) -> None:
    drop_triggers(execute)
    execute("DROP TABLE IF EXISTS article_fts")
