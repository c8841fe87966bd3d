"""Ranking SQLite full-text matches without counting the whole index in every search.

FTS5's bm25() weighs each phrase of a query by how rare it is (its idf), and finds that out
by walking the phrase's whole posting list at the start of every search: for "remission"
among 100,000 articles, most of a search that ranks only the few hundred articles of a rare
concept. The counts hardly change from one search to the next, so they can be kept.

Python's sqlite3 module cannot register FTS5 ranking functions; APSW can, but it brings its own
copy of SQLite, and two copies of SQLite must never open one database file in one process:
POSIX locks belong to the process, so when one copy closes the file it drops the other's
locks (https://www.sqlite.org/howtocorrupt.html, "multiple copies of SQLite"). So each web
process starts one ranking process (on its first search) that opens the database read-only
through APSW and registers `cached_bm25`: bm25 as FTS5 computes it (same k1, b, column
weights and document lengths; tests compare the two), its document counts kept between
searches and taken again once the number of articles has moved by more than COUNTS_DRIFT.

Only few candidates are sent there: scoring a row costs more in Python than in C, so a search
ranking many of them runs FTS5's own bm25 itself (RankingProcess.rank answers None). So does a
search that finds the ranking process busy with another thread's search, dead or slow.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is not loaded in the ranking process: 15 MB less of it
    import numpy as np


# bm25's constants in FTS5 (fts5_aux.c)
K1, B = 1.2, 0.75
# Recount a phrase once the article count differs this much (as a fraction) from the count's.
COUNTS_DRIFT = 0.01
# Per article ranked, the Python function costs about this many posting-list entries walked.
ROW_COST_IN_POSTINGS = 20
OPEN_DATABASES = 4  # databases the ranking process keeps open
ANSWER_WITHIN = 5.0  # seconds; a ranking process slower than this is stopped
STARTED_WITHIN = 10.0  # seconds for a new ranking process to say it is ready
RETRY_AFTER = 60.0  # seconds without one after it failed to start
_ROOT = Path(__file__).resolve().parent.parent  # where `python -m db.fts_rank` finds db/


# The candidates go in as one JSON array, which SQLite reads into the IN list's own index (a
# fifth of the time of inserting 10,000 rows into a temporary table). +rowid: they filter the
# full-text matches rather than drive the lookup (FTS5 would otherwise run the whole query
# again for each candidate). Shared with db/search.py's own bm25 ranking.
MATCHES_AMONG = ("FROM article_fts WHERE article_fts MATCH ? AND rowid BETWEEN ? AND ? "
                 "AND +rowid IN (SELECT value FROM json_each(?))")


def among(ids: Sequence[int]) -> tuple[int, int, str]:
    """MATCHES_AMONG's last three parameters for the candidates IDS (ascending)."""
    return int(ids[0]), int(ids[-1]), "[" + ",".join(map(str, ids)) + "]"


@dataclass
class _Counts:
    """Articles holding a phrase, and the article count when it was counted."""
    holding: int
    articles: int


def _cached_bm25(api, counts_json: str, *weights: float) -> float:  # type: ignore[no-untyped-def]
    """The bm25 score (lower is better, as FTS5's) of the current row (API: APSW's
    FTS5ExtensionApi). COUNTS_JSON: for each phrase of the query, in order, the number of rows
    holding it (null where its columns weigh nothing); WEIGHTS: each column's, as bm25()
    takes them."""
    data = api.aux_data
    if data is None:
        counts = json.loads(counts_json)
        if len(counts) != api.phrase_count:
            raise ValueError(f"{len(counts)} counts for {api.phrase_count} phrases")
        rows = api.row_count
        idf = []
        for i, holding in enumerate(counts):
            if holding is not None:
                value = math.log((rows - holding + 0.5) / (holding + 0.5))
                idf.append((i, value if value > 0 else 1e-6))
        average_length = api.column_total_size(-1) / rows
        data = api.aux_data = (idf, average_length)
    idf, average_length = data
    score = 0.0
    norm = None
    for phrase, weight_of_phrase in idf:
        frequency = 0.0
        for column, offsets in enumerate(api.phrase_locations(phrase)):
            if offsets:
                frequency += (weights[column] if column < len(weights) else 1.0) * len(offsets)
        if frequency:
            if norm is None:
                norm = K1 * (1 - B + B * api.column_size(-1) / average_length)
            score += weight_of_phrase * frequency * (K1 + 1) / (frequency + norm)
    return -score


@dataclass
class _Database:
    """The ranking process's read-only APSW connection to one database, and its counts."""
    inode: int
    connection: object  # apsw.Connection
    counts: dict[str, _Counts] = field(default_factory=dict)

    def holding(self, phrase: str, articles: int) -> int:
        """How many articles hold PHRASE (an FTS5 expression over the text columns)."""
        known = self.counts.get(phrase)
        if known is None or abs(articles - known.articles) > COUNTS_DRIFT * known.articles:
            # fetchall: the statement ends here, holding no read snapshot open between searches
            ((holding,),) = self.connection.execute(  # type: ignore[attr-defined]
                "SELECT count(*) FROM article_fts WHERE article_fts MATCH ?", (phrase,)).fetchall()
            known = self.counts[phrase] = _Counts(int(holding), articles)
            if len(self.counts) > 10_000:  # a bound on memory, far above what readers ask
                self.counts.pop(next(iter(self.counts)))
        return known.holding

    def rank(self, match: str, text_phrases: Sequence[str], other_phrases: int, ids: bytes,
             articles: int, weights: Sequence[float], row_cost: float
             ) -> list[tuple[int, float]] | None:
        holding = [self.holding(p, articles) for p in text_phrases]
        found = array("q")
        found.frombytes(ids)
        if len(found) * row_cost >= sum(holding):
            return None  # FTS5's own walk costs less than scoring the rows here
        counts = json.dumps([*holding, *([None] * other_phrases)])
        marks = ", ".join("?" * len(weights))
        return self.connection.execute(  # type: ignore[attr-defined]
            f"SELECT rowid, cached_bm25(article_fts, ?, {marks}) {MATCHES_AMONG}",
            (counts, *weights, match, *among(found))).fetchall()


def _open(databases: OrderedDict[str, _Database], path: str) -> _Database:
    import apsw

    inode = os.stat(path).st_ino
    found = databases.get(path)
    if found is not None and found.inode == inode:
        databases.move_to_end(path)
        return found
    if found is not None:  # the file was replaced: its counts are another database's
        databases.pop(path).connection.close()  # type: ignore[attr-defined]
    connection = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
    connection.set_busy_timeout(10_000)
    connection.register_fts5_function("cached_bm25", _cached_bm25)
    databases[path] = found = _Database(inode, connection)
    while len(databases) > OPEN_DATABASES:
        databases.popitem(last=False)[1].connection.close()  # type: ignore[attr-defined]
    return found


def _serve(pipe: Connection) -> None:
    """The ranking process: answers each request until the web process closes its end."""
    databases: OrderedDict[str, _Database] = OrderedDict()
    pipe.send(("ready", None))
    while True:
        try:
            path, *request = pipe.recv()
        except (EOFError, OSError):  # the web process is gone
            return
        try:
            answer = ("ok", _open(databases, path).rank(*request))
        except Exception as error:  # noqa: BLE001 - told to the caller, which ranks by itself
            answer = ("error", f"{type(error).__name__}: {error}")
        try:
            pipe.send(answer)
        except OSError:  # the web process went away while this one ranked
            return


class RankingError(Exception):
    """The ranking process could not rank (the caller then ranks with FTS5's bm25)."""


class RankingProcess:
    """The web process's end: one ranking process, started on first use, used by one thread
    at a time (another thread meanwhile ranks by itself), started again after a fork."""

    def __init__(self) -> None:
        self._forget()

    def _forget(self) -> None:
        """Drop any ranking process (a forked child's parent's, which is not the child's)."""
        self.lock = threading.Lock()
        self.pid: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.pipe: Connection | None = None
        self.retry_after = 0.0  # time.monotonic() before which none is started after a failure

    def rank(self, database: str | None, match: str, text_phrases: Sequence[str],
             other_phrases: int, ids: np.ndarray, articles: int, weights: Sequence[float]
             ) -> list[tuple[int, float]] | None:
        """(id, bm25: lower is better) of each of IDS (ascending) that MATCH matches, or None
        when the caller should rank them with FTS5's bm25 itself. DATABASE: the SQLite file;
        MATCH's phrases are TEXT_PHRASES (each an FTS5 expression) in order, then
        OTHER_PHRASES that weigh nothing (the concept filters); ARTICLES: how many articles
        there are now. Raises RankingError if the ranking process failed."""
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        if len(ids) * ROW_COST_IN_POSTINGS >= len(text_phrases) * articles:
            return None  # more than all its phrases could hold: FTS5's walk is cheaper
        if time.monotonic() < self.retry_after or not self.lock.acquire(blocking=False):
            return None
        try:
            pipe = self._pipe()
            pipe.send((os.path.abspath(database), match, list(text_phrases), other_phrases,
                       ids.astype("=i8").tobytes(), articles,
                       tuple(weights), ROW_COST_IN_POSTINGS))
            if not pipe.poll(ANSWER_WITHIN):
                self.stop()
                raise RankingError(f"no answer within {ANSWER_WITHIN:g} s")
            status, answer = pipe.recv()
        except (EOFError, OSError) as error:
            self.stop()
            raise RankingError(f"the ranking process ended ({error or type(error).__name__})") \
                from error
        finally:
            self.lock.release()
        if status != "ok":
            raise RankingError(answer)
        return answer

    def _pipe(self) -> Connection:
        if self.pipe is not None and self.pid == os.getpid() and self.process is not None \
                and self.process.poll() is None:
            return self.pipe
        self.stop()
        # a new interpreter, not a fork: it must hold none of this process's open database
        # files, and must not run this process's main script again (as multiprocessing's
        # spawn would, for a script without a __name__ == "__main__" guard)
        mine, theirs = socket.socketpair()
        self.pid, self.pipe = os.getpid(), Connection(os.dup(mine.fileno()))
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "db.fts_rank", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, cwd=_ROOT)
            theirs.close()
            if not self.pipe.poll(STARTED_WITHIN):
                raise RankingError(f"it did not start within {STARTED_WITHIN:g} s")
            self.pipe.recv()
        except Exception as error:
            self.stop()
            self.retry_after = time.monotonic() + RETRY_AFTER
            raise RankingError(f"no ranking process ({error or type(error).__name__}); "
                               f"trying again in {RETRY_AFTER:g} s") from error
        finally:
            mine.close()
            theirs.close()
        return self.pipe

    def stop(self) -> None:
        """End the ranking process (a new one starts on the next search)."""
        if self.pipe is not None:
            self.pipe.close()
        if self.process is not None and self.pid == os.getpid():
            self.process.kill()
            self.process.wait(5)
        self.pid = self.process = self.pipe = None


ranking_process = RankingProcess()
os.register_at_fork(after_in_child=ranking_process._forget)  # noqa: SLF001


if __name__ == "__main__":  # the ranking process: python -m db.fts_rank FD
    _serve(Connection(int(sys.argv[1])))
