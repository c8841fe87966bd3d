"""Ranking with kept phrase counts (db/fts_rank.py and its C extension db/_bm25.c): the same
scores as FTS5's bm25, the same search pages whichever way they are ranked, counts taken again
as the articles grow, connections of each thread's and each forked child's own, one copy of
SQLite in the process, and a fall-back to bm25 whenever the ranking cannot answer."""

import _json
import _sqlite3
import logging
import math
import multiprocessing
import os
import random
import shutil
import sqlite3
import threading

import numpy as np
import pytest
from sqlalchemy import select

from db import fts_rank, search
from db.articles import upsert_article
from db.query import fts5_phrases, parse_query, to_fts5
from db.session import new_session, session_scope
from tests.conftest import sqlite_url
from tests.test_listing import KINDS, WORDS, _article, _both, _fill, _random_search, _same
from webapp.cli import prepare_database

WEIGHTS = (search.TITLE_WEIGHT, search.SUMMARY_WEIGHT, search.BODY_WEIGHT, search.TAGS_WEIGHT)
RANKER = fts_rank.ranker


def _db(tmp_path) -> str:
    """A SQLite database on either leg of the suite: the kept counts serve SQLite alone (on
    PostgreSQL, search ranks with ts_rank_cd in the database)."""
    url = sqlite_url(tmp_path / "immunofeed.db")
    prepare_database(url)
    return url


def _path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def _bm25(path: str, match: str, ids) -> dict[int, float]:
    with sqlite3.connect(path) as plain:
        return dict(plain.execute(
            "SELECT rowid, bm25(article_fts, ?, ?, ?, ?) FROM article_fts WHERE article_fts "
            "MATCH ? AND rowid IN (SELECT value FROM json_each(?))",
            (*WEIGHTS, match, str(list(map(int, ids))))).fetchall())


def _ranked(path: str, q: str, ids, articles: int, concepts=None):
    """[(id, score)] of the ranking, or None where it leaves ranking to bm25."""
    query = parse_query(q)
    ranked = RANKER.rank(path, to_fts5(query, concepts), *fts5_phrases(query, concepts),
                         np.array(ids, dtype=np.int64), articles, WEIGHTS)
    return None if ranked is None else list(zip(*(a.tolist() for a in ranked), strict=True))


def _close(got: dict[int, float], expected: dict[int, float]) -> bool:
    return got.keys() == expected.keys() and all(
        math.isclose(got[i], score, rel_tol=1e-9, abs_tol=1e-12) for i, score in expected.items())


@pytest.fixture
def answered(monkeypatch):
    """Whether each ranking of the test was answered with kept counts (not None, no
    RankingError)."""
    seen: list[bool] = []
    original = RANKER.rank

    def rank(*args, **kwargs):
        try:
            answer = original(*args, **kwargs)
        except fts_rank.RankingError:
            seen.append(False)
            raise
        seen.append(answer is not None)
        return answer

    monkeypatch.setattr(RANKER, "rank", rank)
    return seen


def _random_query(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(1, 3)):
        word = rng.choice(WORDS)
        parts.append(rng.choice((word, word[:4] + "*", f"{word} OR {rng.choice(WORDS)}",
                                 f'"{word} {rng.choice(WORDS)}"')))
    if rng.random() < 0.3:
        parts.append("-" + rng.choice(WORDS))
    return " ".join(parts)


def test_kept_counts_score_what_fts5s_bm25_scores(tmp_path):
    url = _db(tmp_path)
    _fill(url, 240)
    path = _path(url)
    with sqlite3.connect(path) as plain:
        articles = plain.execute("SELECT count(*) FROM articles").fetchone()[0]
        concept_ids = [c for (c,) in plain.execute(
            "SELECT concept_id FROM article_concepts GROUP BY concept_id")]
    rng = random.Random(4)
    compared = 0
    for _ in range(150):
        q = _random_query(rng)
        if not parse_query(q).groups:
            continue
        concepts = [set(rng.sample(concept_ids, rng.randint(1, 3)))
                    for _ in range(rng.choice((0, 0, 1, 2)))]
        ids = sorted(rng.sample(range(1, articles + 1), rng.randint(1, articles)))
        expected = _bm25(path, to_fts5(parse_query(q), concepts), ids)
        got = _ranked(path, q, ids, articles, concepts)
        assert _close(dict(got), expected), q
        compared += len(got)
    assert compared > 1000


def test_the_extension_shares_pythons_sqlite():
    """Ranking opens the database through the SQLite library of Python's sqlite3 module, so
    one copy of SQLite holds every lock in the process."""
    from db import _bm25

    assert RANKER.extension is _bm25 and RANKER.missing is None
    assert _bm25.same_sqlite(_sqlite3.__file__)
    assert _bm25.sqlite_version() == sqlite3.sqlite_version
    assert not _bm25.same_sqlite(_json.__file__)  # loaded, but no SQLite of its own
    assert not _bm25.same_sqlite("/nonexistent/_sqlite3.so")


@pytest.mark.parametrize("words_alone", [0.0, 2.0])
def test_search_pages_are_the_same_whichever_way_they_are_ranked(tmp_path, monkeypatch,
                                                                 answered, words_alone):
    """WORDS_ALONE: 0, candidates under concepts are ranked by the words' postings alone; 2,
    through the concepts' tokens."""
    url = _db(tmp_path)
    _fill(url, 240)
    monkeypatch.setattr(search, "WORDS_ALONE_ABOVE", words_alone)
    session = new_session(url)
    try:
        for extension, kept in ((RANKER.extension, True), (None, False)):
            monkeypatch.setattr(RANKER, "extension", extension)
            monkeypatch.setattr(RANKER, "_told", True)
            del answered[:]
            rng = random.Random(11)
            for _ in range(120):
                case = _random_search(rng)
                _same(*_both(session, case["q"], case["slugs"], case["sort"], case["page"],
                             case["filters"]))
            assert answered and all(answered) == kept and any(answered) == kept
    finally:
        session.close()


def test_a_concept_whose_every_article_is_a_candidate_is_ranked_without_the_list(
        tmp_path, monkeypatch):
    """When every article tagged with the searched concepts is a candidate, SQLite's concept
    filter alone says which to rank (the candidates are not sent); the pages are those of the
    SQL search either way, with the extension and with FTS5's bm25. A filter that leaves some
    tagged articles out sends the list again, and so do candidates ranked by the words'
    postings alone (WORDS_ALONE_ABOVE: there they are dense among the articles)."""
    from sqlalchemy import update

    from db.models import Article, ArticleConcept, Concept

    url = _db(tmp_path)
    _fill(url, 240)
    with session_scope(url) as s:  # every melanoma article listed
        melanoma = select(ArticleConcept.article_id).join(Concept).where(
            Concept.slug.in_(["melanoma", "pembrolizumab"]))
        s.execute(update(Article).where(Article.id.in_(melanoma))
                  .values(filtered=False, story_id=None))
    listed: list[bool] = []
    original = RANKER.rank

    def rank(*args, **kwargs):
        listed.append(kwargs.get("listed", True))
        return original(*args, **kwargs)

    monkeypatch.setattr(RANKER, "rank", rank)
    session = new_session(url)
    try:
        for extension in (RANKER.extension, None):
            monkeypatch.setattr(RANKER, "extension", extension)
            monkeypatch.setattr(RANKER, "_told", True)
            for q in ("remission", "survival OR relapse", "response -toxicity"):
                for slugs in (["melanoma"], ["melanoma", "pembrolizumab"]):
                    for page in (1, 2):
                        for words_alone, sent in ((2.0, False), (0.0, True)):
                            monkeypatch.setattr(search, "WORDS_ALONE_ABOVE", words_alone)
                            del listed[:]
                            _same(*_both(session, q, slugs, "relevance", page))
                            assert listed == [sent]
                del listed[:]
                _same(*_both(session, q, ["melanoma"], "relevance", 1,
                             search.Filters(kinds=["news"])))
                assert listed == [True]
    finally:
        session.close()


def test_an_article_the_text_index_tags_and_the_listing_does_not_is_left_out(tmp_path,
                                                                              monkeypatch):
    """Ranked by SQLite's concept filter alone, a match the listing index does not count as
    tagged (the two disagreeing) is still left out of the page and its count."""
    from sqlalchemy import update

    monkeypatch.setattr(search, "WORDS_ALONE_ABOVE", 2.0)  # ranked through the concept's token
    url = _db(tmp_path)
    _fill(url, 120)
    with session_scope(url) as s:  # every article listed: the concept filter alone decides
        s.execute(update(search.Article).values(filtered=False, story_id=None))
    session = new_session(url)
    try:
        before = search.search_articles(session, parse_query("remission"), ["melanoma"],
                                        per_page=100)
        melanoma = next(iter(search.listing.listing_for(session)[1]
                             .with_descendants("melanoma")))
        stray = session.scalar(select(search.Article.id).where(
            search.Article.id.not_in([h.article.id for h in before.hits]),
            search.Article.body.contains("remission")))
        assert stray is not None
        # the text index alone told the article is tagged (the trigger re-indexes it)
        session.connection().exec_driver_sql(
            "UPDATE articles SET tag_terms = tag_terms || ' c' || ? WHERE id = ?",
            (melanoma, stray))
        session.commit()
        after = search.search_articles(session, parse_query("remission"), ["melanoma"],
                                       per_page=100)
        assert stray not in [h.article.id for h in after.hits]
        assert [h.article.id for h in after.hits] == [h.article.id for h in before.hits]
        assert after.total == before.total > 0
    finally:
        session.close()


def test_databases_it_cannot_open_by_name_are_left_to_bm25(tmp_path):
    url = _db(tmp_path)
    _fill(url, 120)
    assert _ranked(_path(url), "remission", range(1, 3), 120) is not None
    for database in (None, "", ":memory:", f"file:{_path(url)}?mode=ro"):
        assert _ranked(database, "remission", range(1, 3), 120) is None


def test_counts_are_taken_again_once_the_articles_have_grown(tmp_path):
    url = _db(tmp_path)
    _fill(url, 200)
    rng = random.Random(8)
    added = []

    def add(count: int) -> None:  # articles holding a word no other article holds
        with session_scope(url) as s:
            for _ in range(count):
                article = _article(rng, 1000 + len(added))
                article.title += " zebrafish"
                upsert_article(s, article)
                added.append(article)

    add(10)
    path, match, ids = _path(url), to_fts5(parse_query("zebrafish")), range(1, 400)
    assert _close(dict(_ranked(path, "zebrafish", ids, 210)), _bm25(path, match, ids))
    add(1)  # within the drift: the kept count (10), so no longer quite FTS5's scores
    stale = dict(_ranked(path, "zebrafish", ids, 211))
    assert len(stale) == 11 and not _close(stale, _bm25(path, match, ids))
    add(9)  # 20 more articles than when counted: counted again
    assert _close(dict(_ranked(path, "zebrafish", ids, 220)), _bm25(path, match, ids))


def test_a_replaced_database_file_is_opened_again_with_its_own_counts(tmp_path):
    first, second = _db(tmp_path / "a"), _db(tmp_path / "b")
    _fill(first, 120)
    _fill(second, 200)
    path = _path(first)
    ids = range(1, 250)
    assert _close(dict(_ranked(path, "remission", ids, 120)),
                  _bm25(path, to_fts5(parse_query("remission")), ids))
    with sqlite3.connect(_path(second)) as other:  # all of it in the main file
        other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(_path(second), path + ".new")
    for suffix in ("-wal", "-shm"):  # the first file's, which must not pair with the new one
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    os.replace(path + ".new", path)
    assert _close(dict(_ranked(path, "remission", ids, 200)),
                  _bm25(path, to_fts5(parse_query("remission")), ids))


def test_threads_rank_at_once_each_on_its_own_connection(tmp_path):
    url = _db(tmp_path)
    _fill(url, 240)
    path = _path(url)
    expected = dict(_ranked(path, "remission", range(1, 241), 240))
    results, failures = [], []

    def work() -> None:
        try:
            for _ in range(20):
                results.append(dict(_ranked(path, "remission", range(1, 241), 240)))
        except Exception as error:  # noqa: BLE001 - reported below
            failures.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures and len(results) == 80
    assert all(_close(got, expected) for got in results)


def _rank_in_child(path: str, answers) -> None:
    databases = getattr(RANKER._local, "databases", {})  # noqa: SLF001
    answers.put((_ranked(path, "remission", range(1, 3), 120), len(databases),
                 len(RANKER._local.databases)))  # noqa: SLF001


def test_a_forked_child_opens_its_own_connection(tmp_path):
    url = _db(tmp_path)
    _fill(url, 120)
    path = _path(url)
    mine = _ranked(path, "remission", range(1, 3), 120)
    assert mine and RANKER._local.databases  # noqa: SLF001
    context = multiprocessing.get_context("fork")
    answers = context.Queue()
    child = context.Process(target=_rank_in_child, args=(path, answers))
    child.start()
    theirs, inherited, opened = answers.get(timeout=60)
    child.join(60)
    assert theirs == mine
    assert (inherited, opened) == (0, 1)  # none of the parent's, one of its own


def test_searches_fall_back_to_bm25_when_ranking_fails(tmp_path, monkeypatch, caplog,
                                                      answered):
    url = _db(tmp_path)
    _fill(url, 120)
    session = new_session(url)

    def compare() -> None:
        for q in ("remission", "surv* -relapse", "cohort OR biopsy"):
            for kinds in ([], KINDS[:1]):
                indexed, in_sql = _both(session, q, [], filters=search.Filters(kinds=kinds))
                _same(indexed, in_sql)
                assert indexed.hits

    try:
        with caplog.at_level(logging.WARNING):
            compare()
            assert all(answered) and not caplog.text
            # counts for one phrase too many: the ranking function refuses them
            monkeypatch.setattr(search, "fts5_phrases",
                                lambda query, concepts=None: (fts5_phrases(query, concepts)[0],
                                                              99))
            del answered[:]
            compare()
            assert not any(answered) and "need one double per phrase" in caplog.text
            assert "ranking with kept counts failed" in caplog.text
            monkeypatch.undo()
            caplog.clear()
            # no extension that may be used: said once, then bm25 without a word
            monkeypatch.setattr(RANKER, "extension", None)
            monkeypatch.setattr(RANKER, "missing", "db._bm25 links another SQLite")
            monkeypatch.setattr(RANKER, "_told", False)
            compare()
            compare()
            assert caplog.text.count("db._bm25 links another SQLite") == 1
    finally:
        session.close()


def test_ranking_holds_no_snapshot_between_searches(tmp_path):
    """A reader left in a transaction would keep SQLite from checkpointing the WAL, which would
    then grow for as long as the web app runs."""
    url = _db(tmp_path)
    _fill(url, 120)
    assert _ranked(_path(url), "remission", range(1, 100), 120)
    assert _ranked(_path(url), "biopsy", range(1, 100), 120)  # counted anew
    with session_scope(url) as s:
        upsert_article(s, _article(random.Random(2), 5000))
    writer = sqlite3.connect(_path(url))
    busy, wal_pages, copied = writer.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
    writer.close()
    assert busy == 0 and wal_pages == copied


def test_an_article_whose_text_changes_is_scored_by_its_new_length(tmp_path):
    """Each connection keeps every article's length; a re-crawl that changes an article's text
    (its fetched_at moves, which the change log records) makes it look the length up again."""
    from db.articles import ArticleData
    from db.models import Article

    url = _db(tmp_path)
    _fill(url, 120)
    path, match, ids = _path(url), to_fts5(parse_query("remission")), range(1, 121)
    assert _close(dict(_ranked(path, "remission", ids, 120)), _bm25(path, match, ids))
    assert RANKER._open(path).seq >= 0  # noqa: SLF001 - the lengths are held
    longer = sorted(_bm25(path, match, ids))[:3]
    with session_scope(url) as s:
        for article in s.scalars(select(Article).where(Article.id.in_(longer))):
            _, stored = upsert_article(s, ArticleData(
                canonical_url=article.canonical_url, url=article.url, title=article.title,
                summary=article.summary, body=article.body + " filler" * 300,
                kind=article.kind))
            assert stored == article.id
    assert _close(dict(_ranked(path, "remission", ids, 120)), _bm25(path, match, ids))


def test_kept_lengths_are_found_with_articles_missing_anywhere(tmp_path):
    """Each article's kept length is found by its id where no id before it is missing, and
    where some are (deleted articles: at the start, in runs, alone, at the end); an id with no
    article has none."""
    url = _db(tmp_path)
    _fill(url, 240)
    path = _path(url)
    with sqlite3.connect(path) as plain:
        ids = [i for (i,) in plain.execute("SELECT id FROM articles ORDER BY id")]
        gone = {ids[0], ids[1], *ids[40:47], ids[100], *ids[150:190:3], ids[-1]}
        plain.executemany("DELETE FROM articles WHERE id = ?", [(i,) for i in sorted(gone)])
        plain.commit()
        lengths = {i: sum(_varints(size)) for i, size in plain.execute(
            "SELECT id, sz FROM article_fts_docsize")}
    connection = RANKER.extension.Connection(path)
    try:
        assert connection.load_lengths() == len(ids) - len(gone)
        for i in range(ids[0] - 3, ids[-1] + 4):
            assert connection.kept_length(i) == lengths.get(i), i
    finally:
        connection.close()


def _varints(record: bytes) -> list[int]:
    """The big-endian base-128 varints of an FTS5 docsize record (one per column)."""
    values, value = [], 0
    for byte in record:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            values.append(value)
            value = 0
    return values
