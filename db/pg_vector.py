"""PostgreSQL's search vector over articles, shared by the migrations that (re)build it.

A generated column, which PostgreSQL 15 cannot alter: a migration changing what it holds drops
it and adds it again with its GIN index (a rewrite of the table). What it has held:

- WORDS (0005): title A, summary B, body C, stemmed in English.
- EVERY_ARTICLE (0010): a lexeme no reader's words can make ("every article": the parsers split
  words at spaces), so that a search matching most articles asks the GIN index for the few it
  does not match instead of visiting every matching row (db/search.py).
- CONCEPTS (0011): a lexeme per concept the article is tagged with ("concept 12", from
  `tag_terms`, which the application and a trigger keep, migration 0008), so that a search for
  words among a concept's articles is one GIN query whose posting lists PostgreSQL intersects,
  instead of a primary-key lookup per article under the concept. SQLite's full-text index has
  the same tokens in a column of their own (db/fts_sqlite.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Execute = Callable[[str], Any]

WORDS = """
    setweight(to_tsvector('english', coalesce(title, '')), 'A') ||
    setweight(to_tsvector('english', coalesce(summary, '')), 'B') ||
    setweight(to_tsvector('english', coalesce(body, '')), 'C')"""
EVERY_ARTICLE = " || '''every article'''::tsvector"
# "c0 c12 c45" -> 'concept 12' 'concept 45' (c0, the token every article's tag_terms opens
# with, is left out: the lexeme above serves)
CONCEPTS = (r" || array_to_tsvector(array_remove(string_to_array(ltrim(regexp_replace("
            r"tag_terms, '\s*c([0-9]+)', ',concept \1', 'g'), ','), ','), 'concept 0'))")


def concept_lexeme(concept_id: int) -> str:
    """The lexeme of CONCEPTS for one concept."""
    return f"concept {concept_id}"


def replace_search_vector(execute: Execute, expression: str) -> None:
    """Make articles.search_vector the stored value of EXPRESSION, under its GIN index."""
    execute("DROP INDEX ix_articles_search_vector")
    execute("ALTER TABLE articles DROP COLUMN search_vector")
    execute(f"ALTER TABLE articles ADD COLUMN search_vector tsvector GENERATED ALWAYS AS "
            f"({expression}) STORED")
    execute("CREATE INDEX ix_articles_search_vector ON articles USING GIN (search_vector)")
