"""The search syntax parser: what readers type becomes a safe FTS5 expression."""

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from db.fts_sqlite import EVERY_ARTICLE
from db.query import MAX_QUERY_CHARS, MAX_TERMS, Term, parse_query, to_fts5


def test_words_are_anded_and_phrases_kept():
    q = parse_query('pembrolizumab "lung cancer"')
    assert q.groups == [[Term("pembrolizumab")], [Term("lung cancer")]]
    assert to_fts5(q) == '"pembrolizumab" AND "lung cancer"'
    # a word that could be a concept token is kept to the text columns
    assert to_fts5(parse_query("C12 ok")) == '{title summary body} : "C12" AND "ok"'


def test_or_joins_neighbours_and_not_excludes():
    q = parse_query("melanoma OR glioblastoma -mouse NOT rat")
    assert q.groups == [[Term("melanoma"), Term("glioblastoma")]]
    assert q.excluded == [Term("mouse"), Term("rat")]
    assert to_fts5(q) == '((("melanoma" OR "glioblastoma")) NOT "mouse") NOT "rat"'


def test_prefix_and_quotes_inside_terms():
    q = parse_query('immunotherap* say"hi')
    assert q.groups[0] == [Term("immunotherap", prefix=True)]
    assert to_fts5(parse_query('a"b')).count('"') % 2 == 0


@pytest.mark.parametrize("raw", ['"', "AND", "*", "OR", "NOT", '""', "-", "()", "OR AND"])
def test_nothing_searchable_gives_a_notice(raw):
    q = parse_query(raw)
    assert q.is_empty
    assert q.notice == "Type a word or a phrase to search for."


def test_only_exclusions_gives_a_notice():
    q = parse_query("-mouse")
    assert q.is_empty and q.excluded == [Term("mouse")]
    assert "cannot only exclude" in q.notice


def test_long_input_is_capped_with_a_notice():
    q = parse_query("x" * 5000)
    assert len(q.raw) == MAX_QUERY_CHARS
    assert "first 500 characters" in q.notice


def test_term_count_is_capped():
    q = parse_query(" ".join(f"w{i}" for i in range(100)))
    assert len(q.terms()) == MAX_TERMS
    assert q.notice


def test_near_and_parentheses_are_plain_words():
    q = parse_query("NEAR(cancer, 5)")
    assert [t.text for t in q.terms()] == ["NEAR(cancer,", "5)"]


@pytest.fixture(scope="module")
def fts():
    connection = sqlite3.connect(":memory:")
    connection.execute(  # the columns of the real index (db/fts_sqlite.py)
        "CREATE VIRTUAL TABLE t USING fts5(title, summary, body, tag_terms, "
        "tokenize='porter unicode61 remove_diacritics 2')")
    connection.execute("INSERT INTO t VALUES ('', '', "
                       "'pembrolizumab in non-small cell lung cancer', 'c7 c12')")
    return connection


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=80))
def test_any_input_is_valid_fts5(fts, raw):
    """Whatever is typed, the expression is accepted by a real FTS5 index."""
    q = parse_query(raw)
    if not q.is_empty:
        fts.execute("SELECT count(*) FROM t WHERE t MATCH ?", (to_fts5(q),)).fetchone()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(['"', "*", "-", "OR", "AND", "NOT", "(", ")", "NEAR", ":", "^",
                                 "cancer", "lung", "+", "'"]), max_size=12))
def test_operator_soup_is_valid_fts5(fts, parts):
    q = parse_query(" ".join(parts))
    if not q.is_empty:
        fts.execute("SELECT count(*) FROM t WHERE t MATCH ?", (to_fts5(q),)).fetchone()


def test_search_matches_as_expected(fts):
    def hits(raw):
        return fts.execute("SELECT count(*) FROM t WHERE t MATCH ?",
                           (to_fts5(parse_query(raw)),)).fetchone()[0]

    assert hits('"lung cancer"') == 1
    assert hits('"cancer lung"') == 0
    assert hits("pembro*") == 1
    assert hits("lung -pembrolizumab") == 0
    assert hits("melanoma OR lung") == 1
    assert hits("cancers") == 1  # stemmed
    assert hits("c12") == 0  # concept tokens are never the reader's words


TAG_ROWS = ["c1", "c12", "c12 c7", "c7 c12 c3", "c3"]
TAGGED_TEXTS = ["c12 cases", "Ç7 ç12", "c1s and c3-c7", "cancer", "c 12", "c12℡c7", "c_12 c12s",
                "c0 and C0"]


@pytest.fixture(scope="module")
def tagged_fts():
    """Rows whose text holds words like concept tokens, and whose tags hold such tokens."""
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE VIRTUAL TABLE t USING fts5(title, summary, body, tag_terms, "
                       "tokenize='porter unicode61 remove_diacritics 2')")
    for i, text in enumerate(TAGGED_TEXTS * 2):
        connection.execute("INSERT INTO t VALUES (?, '', ?, ?)",
                           ("", text if i < len(TAGGED_TEXTS) else "",
                            f"{EVERY_ARTICLE} {TAG_ROWS[i % len(TAG_ROWS)]}"))
    return connection


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(["c0", "c12", "C12", "ç12", "c12s", "c1*", "c*", "c", "12", "c7",
                                 '"c7 c12"', '"c12 c7"', "c3-c7", "c_12", "c12℡c7", "Ç7",
                                 "cancer", "cases", "OR", "-c3", "-cancer", "c1s", "ca*"]),
                min_size=1, max_size=4))
def test_words_like_concept_tokens_match_only_the_text(tagged_fts, parts):
    """Words left without the text-columns filter (most) match exactly what they matched
    with it: none of them can match a concept token."""
    q = parse_query(" ".join(parts))
    if q.is_empty:
        return

    def rows(expression):
        return tagged_fts.execute("SELECT rowid FROM t WHERE t MATCH ? ORDER BY rowid",
                                  (expression,)).fetchall()

    assert rows(to_fts5(q)) == rows("{title summary body} : (" + to_fts5(q) + ")")


def test_concept_sets_narrow_the_expression(fts):
    def hits(raw, concepts):
        return fts.execute("SELECT count(*) FROM t WHERE t MATCH ?",
                           (to_fts5(parse_query(raw), concepts),)).fetchone()[0]

    assert hits("lung", [{12, 99}]) == 1
    assert hits("lung", [{12}, {7}]) == 1
    assert hits("lung", [{12}, {8}]) == 0
    assert hits("lung", [{99}]) == 0
    assert hits("melanoma", [{12}]) == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["c0", "c12", "c7", '"c7 c12"', "c1*", "cancer", "cases", "OR",
                                 "-c3", "-cancer", "c_12", "and"]), min_size=1, max_size=4),
       st.lists(st.sets(st.sampled_from([1, 3, 7, 12]), min_size=1), max_size=2))
def test_what_a_search_does_not_match_is_every_article_but_its_matches(tagged_fts, parts,
                                                                       concepts):
    """db/search.py asks for the articles a broad search does not match through the token
    every article holds: all rows less the matches, whatever the query and concept filters."""
    q = parse_query(" ".join(parts))
    if q.is_empty:
        return
    match = to_fts5(q, concepts)

    def rows(expression):
        return {row for (row,) in tagged_fts.execute("SELECT rowid FROM t WHERE t MATCH ?",
                                                    (expression,))}

    everything = {row for (row,) in tagged_fts.execute("SELECT rowid FROM t")}
    assert rows(f'(tag_terms : "{EVERY_ARTICLE}") NOT ({match})') == everything - rows(match)
