"""The listing index: what every search, facet count and concept page needs to know about each
article but its text, held in memory as columns (numpy arrays), one copy per web process.

Counting the matches of a broad search by concept, kind, source and year in SQL reads every
matching article's tags (hundreds of milliseconds at 100,000 articles); over these columns it is
one gather and one bincount (milliseconds). The text itself stays in the database's full-text
index: a search asks it for the matching ids, and for ranks of the few it will show.

The index follows the database through the `article_changes` log that triggers keep (migration
0007): before each use, one indexed read of the log's last sequence number says whether anything
changed; if so, only the articles named since are read again. A change to the concepts, a log
pruned past what this process has read, or a backlog larger than a quarter of the articles
rebuilds it whole. On SQLite, with one writer at a time, log entries become visible in sequence
order, so the last sequence number read is the index's position; on PostgreSQL concurrent
writers' entries appear out of order, so the position is a snapshot, and what it did not see
is read next time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from db import concepts as _concepts
from db.fts_sqlite import EVERY_ARTICLE
from db.models import KINDS

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ID_CHUNK = 10_000  # ids per IN (...) when reading changed articles
# a backlog of changes above this share of the articles (and this many) is read as a whole
# new index rather than merged
REBUILD_SHARE = 0.25
REBUILD_AT_LEAST = 1000


def micros(moment: datetime) -> int:
    """MOMENT (aware, or naive UTC) as microseconds since 1970, as the index keeps dates."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _as_micros(texts: Sequence[str | None]) -> np.ndarray:
    """SQLite's stored datetimes ("YYYY-MM-DD HH:MM:SS[.ffffff]", UTC) as microseconds; 0 for
    none."""
    values = np.array([t if t else "NaT" for t in texts], dtype="datetime64[us]")
    out = values.astype(np.int64)
    out[np.isnat(values)] = 0
    return out


@dataclass(frozen=True)
class Columns:
    """One consistent state of the index; replaced whole, never changed, so a request can keep
    reading the one it started with while another process's writes are taken in."""
    ids: np.ndarray  # int64, ascending: position i describes article ids[i]
    kind: np.ndarray  # int8: index into KINDS, -1 for another kind
    source: np.ndarray  # int64: source id, -1 for none
    date: np.ndarray  # int64 µs: published, or fetched when no date is known
    published: np.ndarray  # int64 µs, 0 for none
    added: np.ndarray  # int64 µs
    listed: np.ndarray  # bool: in lists (not filtered out, not a later source of a story)
    visible: np.ndarray  # bool: not filtered out
    whole: np.ndarray  # bool: its tag_terms hold the token every article should (migration 0009)
    tag_pos: np.ndarray  # int32: the position of each (article, concept) tag's article...
    tag_concepts: np.ndarray  # int32: ...and its concept
    up_pos: np.ndarray  # the same with each tag's ancestors added, one pair per article and
    up_concepts: np.ndarray  # concept: a facet count is what filtering on the concept shows
    tag_mentions: np.ndarray  # int32: how often the article mentions each tag's concept
    # derived: where each article's tags start in tag_pos and up_pos (one more at the end)
    tag_start: np.ndarray = field(init=False, repr=False)
    up_start: np.ndarray = field(init=False, repr=False)
    # the positions newest first (and each position's place in that order), each
    # article's month
    by_date: np.ndarray = field(init=False, repr=False)
    date_rank: np.ndarray = field(init=False, repr=False)
    month: np.ndarray = field(init=False, repr=False)  # of the date, months since 1970-01
    # one more than the largest concept id tagged, and the masks of recent concept sets (a
    # concept page asks for the same one three times)
    concept_bound: int = field(init=False, repr=False)
    masks: dict[frozenset[int], np.ndarray] = field(init=False, repr=False, compare=False)
    # the distinct sources (ascending, -1 for none) and each article's place among them; the
    # same for the years of the dates (e.g. 2026): facets count these codes
    source_values: np.ndarray = field(init=False, repr=False)
    source_code: np.ndarray = field(init=False, repr=False)
    year_values: np.ndarray = field(init=False, repr=False)
    year_code: np.ndarray = field(init=False, repr=False)
    listed_tally: list[Tally] = field(init=False, repr=False, compare=False)  # one, once asked
    # the tags' positions by concept, and where each concept's run starts (one, made once
    # SORT_AFTER masks have been made without it), and how many have been
    by_concept: list[tuple[np.ndarray, np.ndarray]] = field(init=False, repr=False,
                                                           compare=False)
    masks_made: list[int] = field(init=False, repr=False, compare=False)
    # each id's position (len(ids) where there is none), when ids are dense enough for a
    # table indexed by id to be small; None otherwise
    position_of: np.ndarray | None = field(init=False, repr=False)
    # what common words' searches do not match (see unmatched): by search, the ids, and the
    # articles changed since they were asked for (None: none)
    unmatched_kept: dict[str, tuple[np.ndarray, np.ndarray | None]] = field(
        init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # tags in article order, and where each article's run of them starts, so the tags of
        # a few articles are found without a pass over all (_build's come in order; _merge
        # appends its fresh ones: two sorted runs to merge)
        for pos_name, concept_name, _ in _TAGS:
            pos = getattr(self, pos_name)
            if len(pos) > 1 and bool((pos[1:] < pos[:-1]).any()):
                order = np.argsort(pos, kind="stable")
                object.__setattr__(self, pos_name, pos[order])
                object.__setattr__(self, concept_name, getattr(self, concept_name)[order])
                if pos_name == "tag_pos":
                    object.__setattr__(self, "tag_mentions", self.tag_mentions[order])
            pos = getattr(self, pos_name)
            starts = np.searchsorted(pos, np.arange(len(self.ids) + 1, dtype=pos.dtype))
            object.__setattr__(self, pos_name.replace("_pos", "_start"),
                               starts.astype(np.int32) if len(pos) < 2**31 else starts)
        month = self.date.astype("datetime64[us]").astype("datetime64[M]").astype(np.int64)
        # dated articles by date, then undated ones, each by id descending (as SQL lists)
        by_date = np.lexsort((-self.ids, -self.published, self.published == 0))
        date_rank = np.empty(len(by_date), dtype=np.int64)
        date_rank[by_date] = np.arange(len(by_date))
        source_values, source_code = np.unique(self.source, return_inverse=True)
        year_values, year_code = np.unique(month // 12 + 1970, return_inverse=True)
        derived = {
            "by_date": by_date, "date_rank": date_rank, "month": month,
            "concept_bound": int(self.tag_concepts.max(initial=0)) + 1, "masks": {},
            "source_values": source_values, "source_code": source_code.astype(np.int32),
            "year_values": year_values, "year_code": year_code.astype(np.int32),
            "listed_tally": [], "by_concept": [], "masks_made": [0], "position_of": None,
            "unmatched_kept": {},
        }
        if len(self.ids) and self.ids[0] >= 0 and self.ids[-1] < 4 * len(self.ids) + 1024:
            position_of = np.full(int(self.ids[-1]) + 1, len(self.ids), dtype=np.int32)
            position_of[self.ids] = np.arange(len(self.ids), dtype=np.int32)
            derived["position_of"] = position_of
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class ConceptRow:
    id: int
    label: str
    slug: str
    name: str
    parent_slug: str | None


@dataclass(frozen=True)
class ConceptTable:
    chains: dict[int, list[int]]  # id -> itself and its ancestors
    rows: dict[int, ConceptRow]

    @property
    def size(self) -> int:
        """One more than the largest concept id: the length of an array indexed by id."""
        return max(self.rows, default=0) + 1

    def with_descendants(self, slug: str) -> set[int]:
        """As db.concepts.with_descendants, from the table in memory."""
        root = next((row.id for row in self.rows.values() if row.slug == slug), None)
        return {cid for cid, chain in self.chains.items() if root in chain} if root else set()


def _read_concepts(connection: sa.Connection) -> ConceptTable:
    rows = [ConceptRow(*row) for row in connection.exec_driver_sql(
        "SELECT id, label, slug, name, parent_slug FROM concepts")]
    chains = _concepts.ancestor_chains((row.id, row.slug, row.parent_slug) for row in rows)
    return ConceptTable(chains, {row.id: row for row in rows})


_ARTICLE_COLUMNS = {
    # SQLite's dates are text, read exactly by numpy; PostgreSQL gives microseconds itself
    "sqlite": "SELECT id, kind, coalesce(source_id, -1), coalesce(published_at, fetched_at), "
              "published_at, added_at, story_id IS NULL AND NOT filtered, NOT filtered, "
              f"instr(' ' || tag_terms || ' ', ' {EVERY_ARTICLE} ') > 0 FROM articles",
    "postgresql": "SELECT id, kind, coalesce(source_id, -1), "
                  "(extract(epoch FROM coalesce(published_at, fetched_at)) * 1000000)::bigint, "
                  "coalesce((extract(epoch FROM published_at) * 1000000)::bigint, 0), "
                  "coalesce((extract(epoch FROM added_at) * 1000000)::bigint, 0), "
                  "story_id IS NULL AND NOT filtered, NOT filtered, "
                  f"strpos(' ' || tag_terms || ' ', ' {EVERY_ARTICLE} ') > 0 FROM articles",
}


_FETCH = 100_000  # rows turned into arrays at a time: Python's tuples are what cost memory


def _batches(connection: sa.Connection, sql: str, column: str,
             ids: Sequence[int] | None) -> Iterator[list[tuple]]:
    """The rows SQL gives (for the articles IDS only, by COLUMN, unless None), a batch at a
    time, through the driver's own cursor: SQLAlchemy's rows cost more than the reading."""
    cursor = connection.connection.driver_connection.cursor()
    if ids is None:
        cursor.execute(sql)
        while rows := cursor.fetchmany(_FETCH):
            yield rows
        return
    for start in range(0, len(ids), _ID_CHUNK):
        chunk = list(ids[start:start + _ID_CHUNK])
        if connection.dialect.name == "postgresql":
            yield cursor.execute(f"{sql} WHERE {column} = ANY(%s)", (chunk,)).fetchall()
        else:
            marks = ",".join("?" * len(chunk))
            yield cursor.execute(f"{sql} WHERE {column} IN ({marks})", tuple(chunk)).fetchall()


KIND_CODE = {kind: code for code, kind in enumerate(KINDS)}


def _article_arrays(rows: list[tuple], dialect: str) -> dict[str, np.ndarray]:
    article_ids, kinds, sources, dates, published, added, listed, visible, whole = zip(
        *rows, strict=True)
    if dialect == "postgresql":
        times = {name: np.array(values, dtype=np.int64) for name, values in
                 (("date", dates), ("published", published), ("added", added))}
    else:
        times = {name: _as_micros(values) for name, values in
                 (("date", dates), ("published", published), ("added", added))}
    return {"ids": np.array(article_ids, dtype=np.int64),
            "kind": np.array([KIND_CODE.get(k, -1) for k in kinds], dtype=np.int8),
            "source": np.array(sources, dtype=np.int64), **times,
            "listed": np.array(listed, dtype=bool), "visible": np.array(visible, dtype=bool),
            "whole": np.array(whole, dtype=bool)}


def _read(connection: sa.Connection, concepts: ConceptTable,
          ids: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """The columns of the articles IDS (all when None), in the order the rows come."""
    dialect = connection.dialect.name
    parts = [_article_arrays(rows, dialect) for rows in
             _batches(connection, _ARTICLE_COLUMNS[dialect], "id", ids) if rows]
    empty = {"ids": np.int64, "kind": np.int8, "source": np.int64, "date": np.int64,
             "published": np.int64, "added": np.int64, "listed": bool, "visible": bool,
             "whole": bool}
    columns = {name: np.concatenate([p[name] for p in parts]) if parts
               else np.array([], dtype=dtype) for name, dtype in empty.items()}
    tags = [np.array(rows, dtype=np.int64).reshape(-1, 3) for rows in _batches(
        connection, "SELECT article_id, concept_id, mentions FROM article_concepts",
        "article_id", ids)]
    rows = np.concatenate(tags) if tags else np.zeros((0, 3), dtype=np.int64)
    tag_ids, tag_concepts = rows[:, 0].copy(), rows[:, 1].copy()
    up_ids, up_concepts = _with_ancestors(tag_ids, tag_concepts, concepts)
    return {**columns, "tag_ids": tag_ids, "tag_concepts": tag_concepts,
            "tag_mentions": rows[:, 2].astype(np.int32), "up_ids": up_ids,
            "up_concepts": up_concepts}


def _with_ancestors(tag_ids: np.ndarray, tag_concepts: np.ndarray, concepts: ConceptTable
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Each (article, concept) pair and its concept's ancestors, once per article."""
    if not len(tag_ids):
        return tag_ids, tag_concepts
    depth = max(len(chain) for chain in concepts.chains.values()) if concepts.chains else 1
    ladder = np.full((concepts.size, depth), -1, dtype=np.int64)
    for cid, chain in concepts.chains.items():
        ladder[cid, :len(chain)] = chain
    rungs = ladder[tag_concepts]  # a tag's concept is a stored concept (foreign key)
    ids = np.repeat(tag_ids, depth)
    flat = rungs.ravel()
    keep = flat >= 0
    pairs = np.sort(ids[keep] * (concepts.size + 1) + flat[keep])
    if len(pairs):  # once per article (two tags may share ancestors)
        pairs = pairs[np.concatenate(([True], pairs[1:] != pairs[:-1]))]
    return pairs // (concepts.size + 1), pairs % (concepts.size + 1)


_FIELDS = ("ids", "kind", "source", "date", "published", "added", "listed", "visible",
           "whole")
_TAGS = (("tag_pos", "tag_concepts", "tag_ids"), ("up_pos", "up_concepts", "up_ids"))


def _build(fresh: dict[str, np.ndarray]) -> Columns:
    """Columns from what _read gave for every article."""
    order = np.argsort(fresh["ids"], kind="stable")
    parts = {name: fresh[name][order] for name in _FIELDS}
    for pos_name, concept_name, ids_name in _TAGS:
        parts[pos_name] = np.searchsorted(parts["ids"], fresh[ids_name]).astype(np.int32)
        parts[concept_name] = fresh[concept_name].astype(np.int32)
    parts["tag_mentions"] = fresh["tag_mentions"]
    return Columns(**parts)


def _merge(old: Columns, changed: np.ndarray, fresh: dict[str, np.ndarray]) -> Columns:
    """OLD without the articles CHANGED, plus FRESH (their current state; deleted ones are
    simply absent), still in id order. Costs a few passes over the arrays, no sort of the
    tags."""
    keep = ~members(old, changed)
    kept_count = int(keep.sum())
    rank_in_kept = np.cumsum(keep) - 1  # an old position's place among the kept rows
    fresh_order = np.argsort(fresh["ids"], kind="stable")
    fresh_ids = fresh["ids"][fresh_order]
    parts = {name: np.concatenate([getattr(old, name)[keep], fresh[name][fresh_order]])
             for name in _FIELDS}
    final: np.ndarray | None = None  # where each row of that concatenation ends up
    if len(fresh_ids) and kept_count and fresh_ids[0] < parts["ids"][kept_count - 1]:
        order = np.argsort(parts["ids"], kind="stable")
        parts = {name: values[order] for name, values in parts.items()}
        final = np.empty(len(order), dtype=np.int64)
        final[order] = np.arange(len(order))
    for pos_name, concept_name, ids_name in _TAGS:
        old_pos = getattr(old, pos_name)
        kept_tags = keep[old_pos]
        moved = np.concatenate([rank_in_kept[old_pos[kept_tags]],
                                kept_count + np.searchsorted(fresh_ids, fresh[ids_name])])
        parts[pos_name] = (moved if final is None else final[moved]).astype(np.int32)
        parts[concept_name] = np.concatenate([getattr(old, concept_name)[kept_tags],
                                              fresh[concept_name].astype(np.int32)])
        if pos_name == "tag_pos":
            parts["tag_mentions"] = np.concatenate([old.tag_mentions[kept_tags],
                                                    fresh["tag_mentions"]])
    merged = Columns(**parts)
    _carry_unmatched(old, merged, changed)
    return merged


class Listing:
    """The index of one database in this process, and how far into the change log it is."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.columns: Columns | None = None
        self.concepts: ConceptTable | None = None
        # SQLite: the last change taken in. PostgreSQL: the snapshot whose changes are in
        # (changes by transactions it does not see are still to take in), and its xmin
        self.seq = -1
        self.snapshot: tuple[str, int] | None = None
        self.checked = 0.0  # time.monotonic() of the last look at the log

    def current(self, connection: sa.Connection) -> tuple[Columns, ConceptTable]:
        """The index as of now, read through CONNECTION."""
        columns, concepts = self.columns, self.concepts
        stale = time.monotonic() - self.checked > STALE_AFTER_SECONDS
        if connection.dialect.name == "postgresql":
            up_to_date = not stale and self.snapshot is not None and not _pg_changed(
                connection, self.snapshot, any_only=True)
        else:
            last = connection.exec_driver_sql("SELECT max(seq) FROM article_changes").scalar()
            up_to_date = (last or 0) == self.seq
        if columns is not None and concepts is not None and up_to_date:
            self.checked = time.monotonic()
            return columns, concepts
        with self._lock:
            self._catch_up(connection, rebuild=stale)
            assert self.columns is not None and self.concepts is not None
            return self.columns, self.concepts

    def _changes(self, connection: sa.Connection) -> list[int] | None:
        """The articles changed since the index was last brought up to date (0 standing for
        the concepts), or None when only rebuilding will do; moves the index's position."""
        if connection.dialect.name == "postgresql":
            snapshot = _pg_snapshot(connection)  # first: what commits after it comes again
            changed = None if self.snapshot is None else _pg_changed(connection, self.snapshot)
            self.snapshot = snapshot
            return changed
        self.seq, changed = sqlite_changes(
            lambda sql, parameters: connection.exec_driver_sql(sql, parameters).all(), self.seq)
        return changed

    def _catch_up(self, connection: sa.Connection, rebuild: bool) -> None:
        changes = self._changes(connection)
        self.checked = time.monotonic()
        if (rebuild or changes is None or 0 in changes or self.columns is None
                or self.concepts is None
                or len(changes) > max(REBUILD_AT_LEAST, REBUILD_SHARE * len(self.columns))):
            concepts = _read_concepts(connection)
            self.columns, self.concepts = _build(_read(connection, concepts)), concepts
        elif changes:
            changed = np.array(sorted(changes), dtype=np.int64)
            fresh = _read(connection, self.concepts, [int(i) for i in changed])
            self.columns = _merge(self.columns, changed, fresh)


def sqlite_changes(rows: Callable[[str, tuple], Sequence[tuple]],
                   since: int) -> tuple[int, list[int] | None]:
    """SQLite's change log past SINCE (a position this returned before, -1 at first): the log's
    position now, and the articles changed since (0 standing for the concepts), or None when
    the log cannot tell (SINCE is -1, the database was replaced, or the log was pruned past
    SINCE). ROWS(sql, parameters) runs one query and returns its rows. Nothing new costs one
    query: max(seq) and min(seq) are each found in the index, but together by a scan."""
    ((last,),) = rows("SELECT max(seq) FROM article_changes", ())
    last = last or 0
    if since >= 0 and last == since:
        return last, []
    ((first,),) = rows("SELECT min(seq) FROM article_changes", ())
    if since < 0 or last < since or (first or 0) > since + 1:  # new, replaced, or pruned past
        return last, None
    return last, [article_id for (article_id,) in rows(
        "SELECT DISTINCT article_id FROM article_changes WHERE seq > ? AND seq <= ?",
        (since, last))]


def _pg_snapshot(connection: sa.Connection) -> tuple[str, int]:
    snapshot, xmin = connection.exec_driver_sql(
        "SELECT pg_current_snapshot()::text, pg_snapshot_xmin(pg_current_snapshot())::text"
    ).one()
    return snapshot, int(xmin)


def _pg_changed(connection: sa.Connection, snapshot: tuple[str, int], any_only: bool = False
                ) -> list[int] | bool:
    """The articles changed by transactions SNAPSHOT does not see (ANY_ONLY: whether any)."""
    where = ("FROM article_changes WHERE xid >= %(xmin)s::xid8 "
             "AND NOT pg_visible_in_snapshot(xid, %(snapshot)s::pg_snapshot)")
    cursor = connection.connection.driver_connection.cursor()
    values = {"xmin": str(snapshot[1]), "snapshot": snapshot[0]}
    if any_only:  # ordered by xid: the index is the way in, whatever the statistics say
        return cursor.execute(f"SELECT xid {where} ORDER BY xid LIMIT 1",
                              values).fetchone() is not None
    return [article_id for (article_id,) in cursor.execute(
        f"SELECT DISTINCT article_id {where}", values).fetchall()]


def _has_log(connection: sa.Connection) -> bool:
    if connection.dialect.name == "postgresql":
        return connection.exec_driver_sql(
            "SELECT to_regclass('article_changes') IS NOT NULL").scalar() is True
    return connection.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'article_changes'"
    ).first() is not None


_listings: dict[str, Listing] = {}
_listings_lock = threading.Lock()


def listing_for(session: Session) -> tuple[Columns, ConceptTable] | None:
    """The listing index of SESSION's database as of now; None where there is none (other
    backends than SQLite and PostgreSQL, in-memory SQLite, a database not made by the
    migrations)."""
    bind = session.get_bind()
    dialect = bind.dialect.name
    if dialect not in ("sqlite", "postgresql") or (
            dialect == "sqlite" and bind.engine.url.database in (None, "", ":memory:")):
        return None
    key = bind.engine.url.render_as_string(hide_password=False)
    connection = session.connection()
    with _listings_lock:
        listing = _listings.get(key)
        if listing is None:
            if not _has_log(connection):  # made by Base.metadata.create_all, not migrations
                return None
            listing = _listings[key] = Listing()
    return listing.current(connection)


# what the log keeps: on SQLite the last this many changes, on PostgreSQL a day's; a process
# further behind builds its index anew (one that has not looked for half a day always does)
KEEP_CHANGES = 100_000
STALE_AFTER_SECONDS = 12 * 3600


def prune_changes(session: Session, keep: int = KEEP_CHANGES) -> None:
    """Forget the changes no process needs any longer (writers call this now and then: at the
    end of a crawl, of a re-tagging run)."""
    connection = session.connection()
    if not _has_log(connection):
        return
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(
            "DELETE FROM article_changes WHERE at < now() - interval '1 day'")
    else:
        connection.exec_driver_sql(
            "DELETE FROM article_changes WHERE seq <= "
            "(SELECT max(seq) FROM article_changes) - ?", (keep,))


def forget_all() -> None:
    """Drop every index (a forked child or a test that replaced a database builds anew)."""
    with _listings_lock:
        _listings.clear()


MASKS_KEPT = 16  # concept sets whose masks each state of the index keeps


def concept_mask(columns: Columns, concept_ids: Iterable[int]) -> np.ndarray:
    """Which articles are tagged with any of CONCEPT_IDS (read only: the array is shared)."""
    key = frozenset(int(c) for c in concept_ids)
    mask = columns.masks.get(key)
    if mask is None:
        mask = np.zeros(len(columns), dtype=bool)
        columns.masks_made[0] += 1
        if columns.by_concept or columns.masks_made[0] > SORT_AFTER:
            positions, starts = _by_concept(columns)
            for concept_id in key:
                if 0 <= concept_id < columns.concept_bound:
                    mask[positions[starts[concept_id]:starts[concept_id + 1]]] = True
        else:
            mask[columns.tag_pos[_tags_of(columns, key)]] = True
        mask.flags.writeable = False
        if len(columns.masks) >= MASKS_KEPT:
            columns.masks.pop(next(iter(columns.masks)), None)
        columns.masks[key] = mask
    return mask


# Masks made by a pass over every tag before the tags are sorted by concept: sorting them costs
# about as much as this many passes (100,000 articles: 10 ms against 0.24; a million, 108
# against 2.7), so a state of the index that changes before then never pays for it.
SORT_AFTER = 40


def _by_concept(columns: Columns) -> tuple[np.ndarray, np.ndarray]:
    """The tags' article positions ordered by concept, and where each concept's run starts
    (concept_bound + 1 of them): a concept's articles without a pass over every tag (that
    pass cost a twentieth of a selective search at 100,000 articles; a run, a hundredth).
    Sorted once per state of the index (concept ids fit 16 bits: a radix sort)."""
    if not columns.by_concept:
        concepts = columns.tag_concepts
        keys = concepts.astype(np.uint16) if columns.concept_bound <= 1 << 16 else concepts
        order = np.argsort(keys, kind="stable")
        starts = np.searchsorted(concepts[order],
                                 np.arange(columns.concept_bound + 1, dtype=concepts.dtype))
        columns.by_concept[:] = [(columns.tag_pos[order], starts)]
    return columns.by_concept[0]


def _tags_of(columns: Columns, concept_ids: Iterable[int]) -> np.ndarray:
    """Which (article, concept) tags are of one of CONCEPT_IDS: a comparison per tag for a
    few concepts, a table lookup per tag for more (a lookup costs about four comparisons)."""
    wanted = [int(c) for c in concept_ids]
    if 0 < len(wanted) <= 3:
        found = columns.tag_concepts == wanted[0]
        for concept_id in wanted[1:]:
            found |= columns.tag_concepts == concept_id
        return found
    return concept_lookup(columns, wanted)[columns.tag_concepts]


def tag_runs(columns: Columns, article_ids: Sequence[int]) -> list[tuple[int, int, int]]:
    """(id, start, end) of each of ARTICLE_IDS the index holds: its tags are those of
    tag_concepts and tag_mentions from start to end."""
    ids = np.array(article_ids, dtype=np.int64)
    if not len(ids) or not len(columns):
        return []
    pos, held = _searched(columns, ids)
    return [(int(i), int(columns.tag_start[p]), int(columns.tag_start[p + 1]))
            for i, p in zip(ids[held].tolist(), pos[held].tolist(), strict=True)]


def concept_lookup(columns: Columns, concept_ids: Iterable[int]) -> np.ndarray:
    """A table indexed by concept id, True at CONCEPT_IDS; it covers every concept tagged."""
    wanted = [int(c) for c in concept_ids]
    table = np.zeros(max(max(wanted, default=0) + 1, columns.concept_bound), dtype=bool)
    table[wanted] = True
    return table


# Few articles: fewer than the tags (concepts_in) or all articles (newest_first) by this
# factor. Their tags are then gathered from each one's run and their order found by sorting
# them alone, rather than by one pass over every tag or over the whole date order (at a
# million articles, gathering the runs costs as much as the pass at about 30% of them).
FEW_ARTICLES_FACTOR = 32


def concepts_in(columns: Columns, mask: np.ndarray, ancestors: bool = True,
                positions: np.ndarray | None = None) -> np.ndarray:
    """The concept of each tag of the articles in MASK (with ANCESTORS: once per article and
    concept of its tags' chains, as facets count), in no particular order. POSITIONS: MASK's
    np.flatnonzero, if the caller has it."""
    pos, start, concepts = ((columns.up_pos, columns.up_start, columns.up_concepts)
                            if ancestors else
                            (columns.tag_pos, columns.tag_start, columns.tag_concepts))
    if positions is None:
        positions = np.flatnonzero(mask)
    if len(positions) * FEW_ARTICLES_FACTOR >= len(pos):  # many: one pass over every tag
        return concepts[mask[pos]]
    # few: each article's run of tags
    starts = start[positions]
    lengths = start[positions + 1] - starts
    offsets = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return concepts[offsets + np.arange(int(lengths.sum()))]


@dataclass(frozen=True)
class Tally:
    """How many articles of a set have each concept (with its descendants', as concepts_in),
    kind (by code, KINDS' and then 'other'), source and year (by the Columns' codes)."""
    concepts: np.ndarray
    kinds: np.ndarray
    sources: np.ndarray
    years: np.ndarray

    def __sub__(self, other: Tally) -> Tally:
        return Tally(*(mine - theirs for mine, theirs in zip(
            (self.concepts, self.kinds, self.sources, self.years),
            (other.concepts, other.kinds, other.sources, other.years), strict=True)))


def tally(columns: Columns, mask: np.ndarray, concept_size: int) -> Tally:
    """The Tally of the articles in MASK. CONCEPT_SIZE: at least one more than the largest
    concept id. When MASK holds most of the listed articles (a search for a common word), the
    listed articles' tally (counted once per state of the index) less that of the few listed
    ones outside MASK: counting every tag of a million articles takes tens of milliseconds."""
    listed = columns.listed
    size = max(concept_size, columns.concept_bound)
    matches = int(np.count_nonzero(mask))
    if matches * 2 > len(columns) and matches == int(np.count_nonzero(mask & listed)):
        if not columns.listed_tally or len(columns.listed_tally[0].concepts) != size:
            columns.listed_tally[:] = [_count(columns, listed, size)]
        return columns.listed_tally[0] - _count(columns, listed & ~mask, size)
    return _count(columns, mask, size)


def _count(columns: Columns, mask: np.ndarray, concept_size: int) -> Tally:
    # the values gathered by position, however many: picking them with the mask costs more
    # (a million articles, a fifth of them in MASK: 10.7 ms against 2.1 for the three)
    positions = np.flatnonzero(mask)
    return Tally(np.bincount(concepts_in(columns, mask, positions=positions),
                             minlength=concept_size),
                 np.bincount(columns.kind[positions] % (len(KINDS) + 1),  # other (-1): last
                             minlength=len(KINDS) + 1),
                 np.bincount(columns.source_code[positions],
                             minlength=len(columns.source_values)),
                 np.bincount(columns.year_code[positions], minlength=len(columns.year_values)))


def _position_table(columns: Columns, ids: np.ndarray) -> np.ndarray | None:
    """COLUMNS' table of positions, where there is one and every one of IDS falls in it."""
    table = columns.position_of
    if table is not None and len(ids) and ids.min() >= 0 and ids.max() < len(table):
        return table
    return None


def members(columns: Columns, ids: np.ndarray) -> np.ndarray:
    """Which articles are among IDS (ids the index does not hold are left out)."""
    table = _position_table(columns, ids)
    if table is not None:
        # a table lookup per id (a million ids: 19 -> 3 ms); those it lacks mark a spare place
        mask = np.zeros(len(columns) + 1, dtype=bool)
        mask[table[ids]] = True
        return mask[:-1]
    mask = np.zeros(len(columns), dtype=bool)
    if len(columns) and len(ids):
        pos, held = _searched(columns, ids)
        mask[pos[held]] = True
    return mask


# A search whose words nearly every article holds asks the database for the few articles
# they do not match (db/search.py): at a million articles a walk of two posting lists, about
# 50 ms on SQLite, 85 on PostgreSQL. Those few are kept with the state of the index, for up to
# UNMATCHED_KEPT searches holding no more ids in all than UNMATCHED_KEPT_SHARE of the
# articles (at 1, the memory of one more column), and carried into each state merged from it
# with the articles changed in between, which alone are asked again; past
# UNMATCHED_CHANGED_SHARE of the articles changed, a kept answer is dropped (asking for them
# all costs about as much).
UNMATCHED_KEPT = 64
UNMATCHED_KEPT_SHARE = 1.0
UNMATCHED_CHANGED_SHARE = 0.05


def unmatched(columns: Columns, search: str,
              find: Callable[[np.ndarray | None], np.ndarray]) -> np.ndarray:
    """The ids (ascending) of the articles SEARCH (the database's expression for the articles
    a search does not match) finds. FIND(None) asks the database for every one, FIND(ids) for
    those among IDS; the answer is kept with COLUMNS (see UNMATCHED_KEPT)."""
    kept = columns.unmatched_kept
    earlier = kept.pop(search, None)
    if earlier is None:
        found = np.unique(find(None))
    else:
        found, changed = earlier
        if changed is not None:  # the changed articles' answers replace what was kept
            found = np.union1d(found[~np.isin(found, changed)], find(changed))
    kept[search] = (found, None)
    while len(kept) > 1 and (len(kept) > UNMATCHED_KEPT or sum(
            len(ids) for ids, _ in list(kept.values())) > UNMATCHED_KEPT_SHARE * len(columns)):
        kept.pop(next(iter(kept)), None)  # the least recently asked goes
    return found


def _carry_unmatched(old: Columns, merged: Columns, changed: np.ndarray) -> None:
    """OLD's kept unmatched articles into MERGED, the state OLD became when CHANGED did."""
    bound = max(UNMATCHED_CHANGED_SHARE * len(merged), 1)
    for search, (found, before) in list(old.unmatched_kept.items()):
        since = changed if before is None else np.union1d(before, changed)
        if len(since) <= bound:
            merged.unmatched_kept[search] = (found, since)


def _searched(columns: Columns, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of IDS is, or would be, in the index (which must hold some article), and
    which of them it holds: from the table of positions where there is one (3,500 ids among a
    million: 0.06 ms against 0.85 by binary search), else by binary search."""
    table = _position_table(columns, ids)
    if table is not None:
        pos = table[ids]
        held = pos < len(columns)
        return np.where(held, pos, len(columns) - 1), held
    pos = np.minimum(np.searchsorted(columns.ids, ids), len(columns) - 1)
    return pos, columns.ids[pos] == ids


def within(columns: Columns, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Which of IDS are articles of MASK (ids the index does not hold are not)."""
    if not len(ids) or not len(columns):
        return np.zeros(len(ids), dtype=bool)
    pos, held = _searched(columns, ids)
    return held & mask[pos]


def positions(columns: Columns, ids: np.ndarray) -> np.ndarray:
    """The position of each of IDS, every one of which the index holds."""
    return _searched(columns, ids)[0]


ORDER_SLACK = 1024  # positions of the date order read past newest_first's estimate


def newest_first(columns: Columns, mask: np.ndarray, limit: int | None = None) -> np.ndarray:
    """Positions of the articles in MASK, newest first (as lists sort by date); with LIMIT, the
    newest LIMIT of them at least (all, if there are fewer), possibly more."""
    positions = np.flatnonzero(mask)
    if len(positions) * FEW_ARTICLES_FACTOR < len(columns):  # few: sort just them
        return positions[np.argsort(columns.date_rank[positions])]
    order = columns.by_date  # many: the date order filtered, as far as LIMIT needs
    if limit is None:
        return order[mask[order]]
    # where the newest LIMIT are expected to end, were MASK's articles spread evenly (a
    # fifth of a million articles, the newest 10,020: 0.3 ms against 5 for all of them)
    end = limit * len(order) // max(len(positions), 1) * 5 // 4 + ORDER_SLACK
    while True:
        head = order[:end]
        found = head[mask[head]]
        if len(found) >= limit or end >= len(order):
            return found
        end *= 2
