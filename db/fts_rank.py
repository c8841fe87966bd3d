"""Ranking SQLite full-text matches without counting the whole index in every search.

FTS5's bm25() weighs each phrase of a query by how rare it is (its idf), and finds that out
by walking the phrase's whole posting list at the start of every search: for "remission"
among 100,000 articles, most of a search that ranks only the few hundred articles of a rare
concept. The counts hardly change from one search to the next, so this module keeps them.

Python's sqlite3 module cannot register FTS5 ranking functions; APSW can. Each process
(and thread) opens the database a second time, read-only, through APSW and registers
`cached_bm25`: bm25 as FTS5 computes it (same k1, b, column weights and document lengths;
tests compare the two), its document counts passed in. A count is taken again once the
number of articles has moved by more than COUNTS_DRIFT of what it was when counted.

A search ranking many articles gains nothing (the walk is then small beside scoring each
row, which costs more in Python than in C): it runs FTS5's own bm25, through the same
connection, whose newer SQLite is also faster at it.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import apsw
import numpy as np

# bm25's constants in FTS5 (fts5_aux.c)
K1, B = 1.2, 0.75
# Recount a phrase once the article count differs this much (as a fraction) from the count's.
COUNTS_DRIFT = 0.01
# Per article ranked, the Python function costs about this many posting-list entries walked.
ROW_COST_IN_POSTINGS = 20
OPEN_PER_THREAD = 4  # databases a thread keeps a ranking connection to


@dataclass
class _Counts:
    """Articles holding a phrase, and the article count when it was counted."""
    holding: int
    articles: int


def _cached_bm25(api: apsw.FTS5ExtensionApi, counts_json: str, *weights: float) -> float:
    """The bm25 score (lower is better, as FTS5's) of the current row. COUNTS_JSON: for each
    phrase of the query, in order, the number of rows holding it (null where its columns
    weigh nothing); WEIGHTS: each column's, as bm25() takes them."""
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
class Ranker:
    """A read-only APSW connection to one SQLite database, and its phrase counts."""
    path: str
    inode: int
    connection: apsw.Connection
    counts: dict[str, _Counts] = field(default_factory=dict)

    def holding(self, phrase: str, articles: int) -> int:
        """How many articles hold PHRASE (an FTS5 expression over the text columns)."""
        known = self.counts.get(phrase)
        if known is None or abs(articles - known.articles) > COUNTS_DRIFT * known.articles:
            (holding,) = next(self.connection.execute(
                "SELECT count(*) FROM article_fts WHERE article_fts MATCH ?", (phrase,)))
            known = self.counts[phrase] = _Counts(int(holding), articles)
            if len(self.counts) > 10_000:  # a bound on memory, far above what readers ask
                self.counts.pop(next(iter(self.counts)))
        return known.holding

    def rank(self, match: str, text_phrases: Sequence[str], other_phrases: int,
             ids: np.ndarray, articles: int, weights: Sequence[float]
             ) -> list[tuple[int, float]]:
        """(id, bm25: lower is better) of each of IDS (ascending) that MATCH matches. Its
        phrases are TEXT_PHRASES (as FTS5 expressions) in order, then OTHER_PHRASES that weigh
        nothing (the concept filters); ARTICLES: how many articles there are now."""
        if len(ids) * ROW_COST_IN_POSTINGS >= len(text_phrases) * articles:
            holding = [articles]  # more than all its phrases could hold: no need to count
        else:
            holding = [self.holding(p, articles) for p in text_phrases]
        bounds = (int(ids[0]), int(ids[-1]), "[" + ",".join(map(str, ids.tolist())) + "]")
        # +rowid: the candidates filter the matches rather than drive the lookup (FTS5 would
        # otherwise run the whole query again for each candidate)
        where = ("FROM article_fts WHERE article_fts MATCH ? AND rowid BETWEEN ? AND ? "
                 "AND +rowid IN (SELECT value FROM json_each(?))")
        marks = ", ".join("?" * len(weights))
        if len(ids) * ROW_COST_IN_POSTINGS < sum(holding):
            counts = json.dumps([*holding, *([None] * other_phrases)])
            sql = f"SELECT rowid, cached_bm25(article_fts, ?, {marks}) {where}"
            parameters: tuple = (counts, *weights, match, *bounds)
        else:
            sql = f"SELECT rowid, bm25(article_fts, {marks}) {where}"
            parameters = (*weights, match, *bounds)
        return self.connection.execute(sql, parameters).fetchall()


_local = threading.local()


def ranker(database: str | None) -> Ranker | None:
    """This thread's Ranker for the SQLite file DATABASE (None for an in-memory database, or
    one that cannot be opened so: the caller then ranks through its own connection)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = os.path.abspath(database)
    try:
        inode = os.stat(path).st_ino
    except OSError:
        return None
    open_here: OrderedDict[str, Ranker] | None = getattr(_local, "rankers", None)
    if open_here is None or getattr(_local, "pid", None) != os.getpid():
        # a new thread, or a forked child: never use a parent's connection
        open_here = _local.rankers = OrderedDict()
        _local.pid = os.getpid()
    found = open_here.get(path)
    if found is not None and found.inode == inode:
        open_here.move_to_end(path)
        return found
    if found is not None:  # the file was replaced: its counts are another database's
        _close(open_here.pop(path))
    try:
        connection = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
        connection.set_busy_timeout(10_000)
        connection.register_fts5_function("cached_bm25", _cached_bm25)
    except apsw.Error:
        return None
    open_here[path] = found = Ranker(path, inode, connection)
    while len(open_here) > OPEN_PER_THREAD:
        _close(open_here.popitem(last=False)[1])
    return found


def _close(old: Ranker) -> None:
    try:
        old.connection.close()
    except apsw.Error:
        pass
