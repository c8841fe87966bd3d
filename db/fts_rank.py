"""Ranking SQLite full-text matches without counting the whole index in every search.

FTS5's bm25() weighs each phrase of a query by how rare it is (its idf), and finds that out
by walking the phrase's whole posting list at the start of every search: for "remission"
among 100,000 articles, most of a search that ranks only the few hundred articles of a rare
concept. The counts hardly change from one search to the next, so they are kept here, per
database, and taken again once the number of articles has moved by more than COUNTS_DRIFT.

Python's sqlite3 module cannot register FTS5 ranking functions, so db/_bm25.c (a C extension
built with the package) registers `cached_bm25` - bm25 as FTS5 computes it (same k1, b, column
weights and document lengths; tests compare the two), each phrase's article count given by
the caller - on read-only connections of its own. It links the SQLite library that Python's
sqlite3 module uses, and is used only once the dynamic linker confirms they are one copy: two
copies of SQLite must never open one database file in one process, since POSIX locks belong
to the process and one copy closing the file drops the other's locks
(https://www.sqlite.org/howtocorrupt.html, "multiple copies of SQLite"). Each thread keeps its
own connections; a forked child opens its own.

Where the extension is missing or links another SQLite, Ranker.rank answers None and the
caller ranks with FTS5's own bm25 (slower, the same order), as the log says once.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from db import listing

log = logging.getLogger(__name__)

# Recount a phrase once the article count differs this much (as a fraction) from the count's.
COUNTS_DRIFT = 0.01
OPEN_DATABASES = 4  # databases each thread keeps a ranking connection to

# The candidates go in as one JSON array, which SQLite reads into the IN list's own index (a
# fifth of the time of inserting 10,000 rows into a temporary table). +rowid: they filter the
# full-text matches rather than drive the lookup (FTS5 would otherwise run the whole query
# again for each candidate).
MATCHES_BETWEEN = "FROM article_fts WHERE article_fts MATCH ? AND rowid BETWEEN ? AND ?"
MATCHES_AMONG = f"{MATCHES_BETWEEN} AND +rowid IN (SELECT value FROM json_each(?))"


def matches_among(ids: np.ndarray, listed: bool = True) -> tuple[str, tuple[int | str, ...]]:
    """The FROM and WHERE of a ranking of the matches among the candidates IDS (ascending),
    after the MATCH expression's parameter: with the list of them, or (LISTED false: every
    match between the first and last is wanted) without it. Shared with db/search.py's own
    bm25 ranking."""
    bounds = (int(ids[0]), int(ids[-1]))
    if not listed:
        return MATCHES_BETWEEN, bounds
    return MATCHES_AMONG, (*bounds, "[" + ",".join(map(str, ids.tolist())) + "]")


class RankingError(Exception):
    """The ranking connection could not rank (the caller then ranks with FTS5's bm25)."""


def _extension() -> tuple[Any, str | None]:
    """db._bm25 if it can be used here, else None and why not."""
    try:
        import _sqlite3

        from db import _bm25
    except ImportError as error:
        return None, f"the C extension db._bm25 is not built ({error})"
    if not _bm25.same_sqlite(getattr(_sqlite3, "__file__", "")):
        return None, (f"db._bm25 links SQLite {_bm25.sqlite_version()} from another library "
                      "than Python's sqlite3 module")
    return _bm25, None


@dataclass
class _Counts:
    """Articles holding a phrase, and the article count when it was counted."""
    holding: int
    articles: int


@dataclass
class _Database:
    """One thread's read-only ranking connection to one database file, its counts, and the
    article_changes log's position when the articles' lengths it holds were last current."""
    inode: int
    connection: Any  # db._bm25.Connection
    counts: dict[str, _Counts] = field(default_factory=dict)
    seq: int = -1  # -1: no lengths held

    def follow_lengths(self) -> None:
        """Keep the articles' lengths current: the log names every article added, deleted or
        changed (a re-crawl that changes the text moves fetched_at); those are forgotten, and
        looked up when ranked. All are read again when the log cannot say what changed."""
        try:
            self.seq, changed = listing.sqlite_changes(self.connection.rows, self.seq)
        except RuntimeError:  # a database from before the log: lengths are looked up
            return
        if changed is None:
            self.connection.load_lengths()
        elif changed:
            self.connection.forget_lengths(struct.pack(f"={len(changed)}q", *changed))

    def holding(self, phrase: str, articles: int) -> int:
        """How many articles hold PHRASE (an FTS5 expression over the text columns)."""
        known = self.counts.get(phrase)
        if known is None or abs(articles - known.articles) > COUNTS_DRIFT * known.articles:
            ((holding,),) = self.connection.rows(
                "SELECT count(*) FROM article_fts WHERE article_fts MATCH ?", (phrase,))
            known = self.counts[phrase] = _Counts(int(holding), articles)
            if len(self.counts) > 10_000:  # a bound on memory, far above what readers ask
                self.counts.pop(next(iter(self.counts)))
        return known.holding


class Ranker:
    """bm25 with kept counts, through each thread's own connections to each database."""

    def __init__(self) -> None:
        self.extension, self.missing = _extension()
        self._told = False
        self._local = threading.local()
        self._inherited: list[object] = []
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        """In a forked child: the parent's connections are never used, nor closed."""
        self._inherited.append(self._local)
        self._local = threading.local()

    def rank(self, database: str | None, match: str, text_phrases: Sequence[str],
             other_phrases: int, ids: np.ndarray, articles: int, weights: Sequence[float],
             listed: bool = True) -> tuple[np.ndarray, np.ndarray] | None:
        """The ids (ascending) of those of IDS (ascending) that MATCH matches, and their bm25
        (lower is better), or None when the caller should rank them with FTS5's bm25 itself.
        DATABASE: the SQLite file; MATCH's phrases are TEXT_PHRASES (each an FTS5 expression)
        in order, then OTHER_PHRASES that weigh nothing (the concept filters); ARTICLES: how
        many articles there are now. LISTED false: every match between the first and last of
        IDS is wanted (MATCH's concept filter leaves out the rest), so IDS are not sent.
        Raises RankingError if the ranking failed."""
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        if self.extension is None:
            if not self._told:
                self._told = True
                log.warning("%s: searches rank with FTS5's bm25, which counts every "
                            "article holding each word in every search", self.missing)
            return None
        try:
            found = self._open(os.path.abspath(database))
            found.follow_lengths()
            holding = [float(found.holding(p, articles)) for p in text_phrases]
            counts = struct.pack(f"={len(holding) + other_phrases}d",
                                 *holding, *([-1.0] * other_phrases))
            marks = ", ".join("?" * len(weights))
            among, parameters = matches_among(ids, listed)
            matched, ranks = found.connection.ranked(
                f"SELECT rowid, cached_bm25(article_fts, ?, {marks}) {among}",
                (counts, *map(float, weights), match, *parameters))
            return np.frombuffer(matched, dtype=np.int64), np.frombuffer(ranks)
        except (RuntimeError, OSError) as error:
            raise RankingError(str(error)) from error

    def _open(self, path: str) -> _Database:
        databases: OrderedDict[str, _Database] | None = getattr(self._local, "databases", None)
        if databases is None:
            databases = self._local.databases = OrderedDict()
        inode = os.stat(path).st_ino
        found = databases.get(path)
        if found is not None and found.inode == inode:
            databases.move_to_end(path)
            return found
        if found is not None:  # the file was replaced: its counts are another database's
            databases.pop(path).connection.close()
        databases[path] = found = _Database(inode, self.extension.Connection(path))
        while len(databases) > OPEN_DATABASES:
            databases.popitem(last=False)[1].connection.close()
        return found


ranker = Ranker()
