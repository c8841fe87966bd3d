"""Ranking with kept phrase counts (db/fts_rank.py): the same scores as FTS5's bm25, the same
search pages through either path, counts taken again as the articles grow, and a fall-back to
bm25 whenever the second connection cannot be used."""

import logging
import math
import random
import sqlite3
import threading

import numpy as np
import pytest

from db import fts_rank, search
from db.articles import upsert_article
from db.query import fts5_phrases, parse_query, to_fts5
from db.session import new_session, session_scope
from tests.test_listing import KINDS, WORDS, _article, _both, _db, _fill, _random_search, _same

WEIGHTS = (search.TITLE_WEIGHT, search.SUMMARY_WEIGHT, search.BODY_WEIGHT, search.TAGS_WEIGHT)


def _path(url: str) -> str:
    return url.removeprefix("sqlite:///")


@pytest.fixture
def fresh_rankers(monkeypatch):
    """Every ranker opened anew for this test (and the ranking function counted)."""
    calls = []
    original = fts_rank._cached_bm25  # noqa: SLF001

    def counted(*args):
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(fts_rank, "_cached_bm25", counted)
    monkeypatch.setattr(fts_rank, "_local", threading.local())
    return calls


def _random_query(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(1, 3)):
        word = rng.choice(WORDS)
        parts.append(rng.choice((word, word[:4] + "*", f"{word} OR {rng.choice(WORDS)}",
                                 f'"{word} {rng.choice(WORDS)}"')))
    if rng.random() < 0.3:
        parts.append("-" + rng.choice(WORDS))
    return " ".join(parts)


def test_kept_counts_score_what_fts5s_bm25_scores(tmp_path, monkeypatch, fresh_rankers):
    monkeypatch.setattr(fts_rank, "ROW_COST_IN_POSTINGS", 0)  # always the Python function
    url = _db(tmp_path)
    _fill(url, 240)
    plain = sqlite3.connect(_path(url))
    ranker = fts_rank.ranker(_path(url))
    assert ranker is not None
    articles = plain.execute("SELECT count(*) FROM articles").fetchone()[0]
    concept_ids = [c for (c,) in plain.execute(
        "SELECT concept_id FROM article_concepts GROUP BY concept_id")]
    rng = random.Random(4)
    compared = 0
    for _ in range(150):
        query = parse_query(_random_query(rng))
        if not query.groups:
            continue
        concepts = [set(rng.sample(concept_ids, rng.randint(1, 3)))
                    for _ in range(rng.choice((0, 0, 1, 2)))]
        ids = np.array(sorted(rng.sample(range(1, articles + 1), rng.randint(1, articles))))
        match = to_fts5(query, concepts)
        expected = dict(plain.execute(
            "SELECT rowid, bm25(article_fts, ?, ?, ?, ?) FROM article_fts WHERE article_fts "
            "MATCH ? AND rowid IN (SELECT value FROM json_each(?))",
            (*WEIGHTS, match, str(ids.tolist()))).fetchall())
        calls = len(fresh_rankers)
        got = dict(ranker.rank(match, *fts5_phrases(query, concepts), ids, articles, WEIGHTS))
        assert len(fresh_rankers) - calls == len(got)  # the Python function scored each row
        assert got.keys() == expected.keys()
        for article_id, score in expected.items():
            assert math.isclose(got[article_id], score, rel_tol=1e-9, abs_tol=1e-12)
        compared += len(got)
    assert compared > 1000


def test_search_pages_are_the_same_whichever_way_they_are_ranked(tmp_path, monkeypatch,
                                                                 fresh_rankers):
    url = _db(tmp_path)
    _fill(url, 240)
    session = new_session(url)
    try:
        for cost, uses_python in ((0, True), (10**9, False)):
            monkeypatch.setattr(fts_rank, "ROW_COST_IN_POSTINGS", cost)
            del fresh_rankers[:]
            rng = random.Random(11)
            for _ in range(120):
                case = _random_search(rng)
                _same(*_both(session, case["q"], case["slugs"], case["sort"], case["page"],
                             case["filters"]))
            assert bool(fresh_rankers) == uses_python
    finally:
        session.close()


def test_a_selective_search_scores_in_python_and_a_broad_one_in_fts5(tmp_path, fresh_rankers):
    url = _db(tmp_path)
    _fill(url, 240)
    ranker = fts_rank.ranker(_path(url))
    query = parse_query("remission")
    phrases = fts5_phrases(query)
    holding = ranker.holding(phrases[0][0], 240)
    assert holding > 100
    few = np.arange(1, holding // fts_rank.ROW_COST_IN_POSTINGS)
    assert ranker.rank(to_fts5(query), *phrases, few, 240, WEIGHTS)
    assert fresh_rankers
    del fresh_rankers[:]
    assert ranker.rank(to_fts5(query), *phrases, np.arange(1, 241), 240, WEIGHTS)
    assert not fresh_rankers


def test_counts_are_taken_again_once_the_articles_have_grown(tmp_path, fresh_rankers):
    url = _db(tmp_path)
    _fill(url, 200)
    ranker = fts_rank.ranker(_path(url))
    phrase = fts5_phrases(parse_query("remission"))[0][0]
    before = ranker.holding(phrase, 200)
    rng = random.Random(8)
    with session_scope(url) as s:
        for i in range(1000, 1010):
            article = _article(rng, i)
            article.title += " remission"
            upsert_article(s, article)
    assert ranker.holding(phrase, 201) == before  # within the drift: the kept count
    assert ranker.holding(phrase, 210) == before + 10  # 5% more articles: counted again


def test_each_thread_has_its_own_ranker_and_only_files_have_one(tmp_path, fresh_rankers):
    url = _db(tmp_path)
    path = _path(url)
    assert fts_rank.ranker(path) is fts_rank.ranker(path)
    in_thread = []
    worker = threading.Thread(target=lambda: in_thread.append(fts_rank.ranker(path)))
    worker.start()
    worker.join()
    assert in_thread[0] is not None and in_thread[0] is not fts_rank.ranker(path)
    for database in (None, "", ":memory:", str(tmp_path / "missing.db")):
        assert fts_rank.ranker(database) is None


def test_searches_fall_back_to_bm25_when_the_ranker_fails(tmp_path, monkeypatch, caplog,
                                                          fresh_rankers):
    url = _db(tmp_path)
    _fill(url, 120)
    # counts for one phrase too many: the ranking function refuses them
    monkeypatch.setattr(search, "fts5_phrases",
                        lambda query, concepts=None: (fts5_phrases(query, concepts)[0], 99))
    monkeypatch.setattr(fts_rank, "ROW_COST_IN_POSTINGS", 0)
    session = new_session(url)
    try:
        with caplog.at_level(logging.WARNING, logger="db.search"):
            for q in ("remission", "surv* -relapse", "cohort OR biopsy"):
                for kinds in ([], KINDS[:1]):
                    indexed, in_sql = _both(session, q, [], filters=search.Filters(kinds=kinds))
                    _same(indexed, in_sql)
                    assert indexed.hits
        assert "using bm25" in caplog.text
    finally:
        session.close()
