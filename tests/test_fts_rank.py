"""Ranking with kept phrase counts (db/fts_rank.py): the same scores as FTS5's bm25, the same
search pages whichever way they are ranked, counts taken again as the articles grow, a ranking
process of each web process's own (and a forked child's own), and a fall-back to bm25 whenever
the ranking process cannot answer."""

import logging
import math
import multiprocessing
import os
import random
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from db import fts_rank, search
from db.articles import upsert_article
from db.query import fts5_phrases, parse_query, to_fts5
from db.session import new_session, session_scope
from tests.conftest import sqlite_url
from tests.test_listing import KINDS, WORDS, _article, _both, _fill, _random_search, _same
from webapp.cli import prepare_database

WEIGHTS = (search.TITLE_WEIGHT, search.SUMMARY_WEIGHT, search.BODY_WEIGHT, search.TAGS_WEIGHT)
RANKER = fts_rank.ranking_process


def _db(tmp_path) -> str:
    """A SQLite database on either leg of the suite: the ranking process serves SQLite alone
    (on PostgreSQL, search ranks with ts_rank_cd in the database)."""
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
    query = parse_query(q)
    return RANKER.rank(path, to_fts5(query, concepts), *fts5_phrases(query, concepts),
                       np.array(ids, dtype=np.int64), articles, WEIGHTS)


def _close(got: dict[int, float], expected: dict[int, float]) -> bool:
    return got.keys() == expected.keys() and all(
        math.isclose(got[i], score, rel_tol=1e-9, abs_tol=1e-12) for i, score in expected.items())


@pytest.fixture
def answered(monkeypatch):
    """Whether each ranking of the test was answered by the ranking process (not None, no
    RankingError)."""
    seen: list[bool] = []
    original = RANKER.rank

    def rank(*args):
        try:
            answer = original(*args)
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


def test_kept_counts_score_what_fts5s_bm25_scores(tmp_path, monkeypatch):
    monkeypatch.setattr(fts_rank, "ROW_COST_IN_POSTINGS", 0)  # always the ranking process
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
        if got is None:  # only when no phrase is held by any article
            assert not expected
            continue
        assert _close(dict(got), expected), q
        compared += len(got)
    assert compared > 1000


def test_search_pages_are_the_same_whichever_way_they_are_ranked(tmp_path, monkeypatch,
                                                                 answered):
    url = _db(tmp_path)
    _fill(url, 240)
    session = new_session(url)
    try:
        for cost, by_the_process in ((0, True), (10**9, False)):
            monkeypatch.setattr(fts_rank, "ROW_COST_IN_POSTINGS", cost)
            del answered[:]
            rng = random.Random(11)
            for _ in range(120):
                case = _random_search(rng)
                _same(*_both(session, case["q"], case["slugs"], case["sort"], case["page"],
                             case["filters"]))
            assert any(answered) == by_the_process
    finally:
        session.close()


def test_few_candidates_are_scored_by_the_process_and_many_by_fts5(tmp_path):
    url = _db(tmp_path)
    _fill(url, 240)
    holding = len(_bm25(_path(url), to_fts5(parse_query("remission")), range(1, 241)))
    assert holding > 100
    few = range(1, holding // fts_rank.ROW_COST_IN_POSTINGS)
    assert _close(dict(_ranked(_path(url), "remission", few, 240)),
                  _bm25(_path(url), to_fts5(parse_query("remission")), few))
    assert _ranked(_path(url), "remission", range(1, 241), 240) is None
    for database in (None, "", ":memory:"):
        assert _ranked(database, "remission", few, 240) is None


def test_counts_are_taken_again_once_the_articles_have_grown(tmp_path, monkeypatch):
    monkeypatch.setattr(fts_rank, "ROW_COST_IN_POSTINGS", 0)
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


def test_a_busy_ranking_process_is_not_waited_for(tmp_path):
    url = _db(tmp_path)
    _fill(url, 120)
    with RANKER.lock:  # another thread's search
        assert _ranked(_path(url), "remission", range(1, 3), 120) is None
    assert _ranked(_path(url), "remission", range(1, 3), 120) is not None


def _rank_in_child(path: str, answers) -> None:
    answers.put((_ranked(path, "remission", range(1, 3), 120), RANKER.process.pid))


def test_a_forked_child_starts_its_own_ranking_process(tmp_path):
    url = _db(tmp_path)
    _fill(url, 120)
    path = _path(url)
    mine = _ranked(path, "remission", range(1, 3), 120)
    assert mine is not None
    context = multiprocessing.get_context("fork")
    answers = context.Queue()
    child = context.Process(target=_rank_in_child, args=(path, answers))
    child.start()
    theirs, their_process = answers.get(timeout=60)
    child.join(60)
    assert theirs == mine
    assert their_process != RANKER.process.pid


def test_searches_fall_back_to_bm25_when_the_ranking_process_fails(tmp_path, monkeypatch,
                                                                   caplog, answered):
    url = _db(tmp_path)
    _fill(url, 120)
    monkeypatch.setattr(fts_rank, "ROW_COST_IN_POSTINGS", 0)
    session = new_session(url)

    def compare() -> None:
        for q in ("remission", "surv* -relapse", "cohort OR biopsy"):
            for kinds in ([], KINDS[:1]):
                indexed, in_sql = _both(session, q, [], filters=search.Filters(kinds=kinds))
                _same(indexed, in_sql)
                assert indexed.hits

    try:
        with caplog.at_level(logging.WARNING, logger="db.search"):
            compare()
            assert all(answered) and "failed" not in caplog.text
            dead = RANKER.process
            dead.kill()  # the ranking process dies between searches: a new one answers
            dead.wait(10)
            del answered[:]
            compare()
            assert all(answered) and RANKER.process is not dead and "failed" not in caplog.text
            lost, gone = multiprocessing.Pipe()  # its pipe breaks: that search ranks by itself
            gone.close()
            RANKER.pipe = lost
            del answered[:]
            compare()
            assert "the ranking process failed" in caplog.text
            assert not answered[0] and answered[-1]  # and a new one answers the next
            caplog.clear()
            # counts for one phrase too many: the ranking function refuses them
            monkeypatch.setattr(search, "fts5_phrases",
                                lambda query, concepts=None: (fts5_phrases(query, concepts)[0],
                                                              99))
            compare()
            assert "counts for" in caplog.text
    finally:
        session.close()


def test_the_ranking_process_holds_no_snapshot_between_searches(tmp_path, monkeypatch):
    """A reader left in a transaction would keep SQLite from checkpointing the WAL, which would
    then grow for as long as the web app runs."""
    monkeypatch.setattr(fts_rank, "ROW_COST_IN_POSTINGS", 0)
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


def test_a_ranking_process_that_cannot_start_is_not_tried_again_at_once(tmp_path, monkeypatch,
                                                                        caplog, answered):
    url = _db(tmp_path)
    _fill(url, 120)
    monkeypatch.setattr(fts_rank, "ROW_COST_IN_POSTINGS", 0)
    RANKER.stop()
    python = fts_rank.sys.executable
    monkeypatch.setattr(fts_rank.sys, "executable", "/bin/false")  # exits at once
    session = new_session(url)
    try:
        with caplog.at_level(logging.WARNING, logger="db.search"):
            _same(*_both(session, "remission", []))
            assert "no ranking process" in caplog.text and "trying again in 60 s" in caplog.text
            assert RANKER.process is None
            caplog.clear()
            _same(*_both(session, "biopsy", []))  # within the minute: not tried, not logged
            assert answered == [False, False] and not caplog.text
            RANKER.retry_after = 0.0  # a minute later, with a Python that starts
            monkeypatch.setattr(fts_rank.sys, "executable", python)
            _same(*_both(session, "biopsy", []))
            assert answered[-1] and RANKER.process is not None and not caplog.text
    finally:
        session.close()


RANK_AND_WAIT = """
import sys, time
import numpy as np
from db import fts_rank
from db.query import fts5_phrases, parse_query, to_fts5
fts_rank.ROW_COST_IN_POSTINGS = 0
query = parse_query("remission")
assert fts_rank.ranking_process.rank(sys.argv[1], to_fts5(query), *fts5_phrases(query),
                                     np.arange(1, 50), 120, (10.0, 4.0, 1.0, 0.0))
print(fts_rank.ranking_process.process.pid, flush=True)
time.sleep(600)
"""


def test_the_ranking_process_ends_when_its_web_process_is_killed(tmp_path):
    url = _db(tmp_path)
    _fill(url, 120)
    with subprocess.Popen([sys.executable, "-c", RANK_AND_WAIT, _path(url)],
                          stdout=subprocess.PIPE, text=True,
                          cwd=fts_rank._ROOT) as web:  # noqa: SLF001
        try:
            ranking = int(web.stdout.readline())
            assert os.path.exists(f"/proc/{ranking}")
        finally:
            web.kill()
            web.wait(30)
    deadline = time.monotonic() + 30
    while os.path.exists(f"/proc/{ranking}") and _state(ranking) != "Z" \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{ranking}") or _state(ranking) == "Z"


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""
