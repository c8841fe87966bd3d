"""Copy a whole ImmunoFeed database to another, e.g. SQLite to PostgreSQL: the target's schema
is made by the migrations, then every table is streamed across in batches, ids kept."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from db.migrate import upgrade
from db.models import Base
from db.session import get_engine

BATCH = 2000


class CopyError(ValueError):
    """The copy cannot be made; the message says why."""


def _tables() -> list[sa.Table]:
    return list(Base.metadata.sorted_tables)  # parents before the tables that refer to them


def row_counts(url: str) -> dict[str, int]:
    with get_engine(url).connect() as connection:
        return {t.name: connection.scalar(sa.select(sa.func.count()).select_from(t)) or 0
                for t in _tables()}


def check_source(url: str) -> int:
    """Rows to copy from URL, once it is known to be an ImmunoFeed database (brought to this
    version's schema)."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        if not Path(parsed.database).expanduser().is_file():
            raise CopyError(f"no database file at {parsed.database}")
    with get_engine(url).connect() as connection:
        if not sa.inspect(connection).has_table("articles"):
            raise CopyError(f"{_shown(url)} is not an ImmunoFeed database (no articles table)")
    upgrade(url)
    return sum(row_counts(url).values())


def copy_database(source_url: str, target_url: str,
                  progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Copy every table of SOURCE_URL into TARGET_URL, which must hold no rows yet. Returns the
    rows copied per table."""
    if sa.engine.make_url(source_url) == sa.engine.make_url(target_url):
        raise CopyError("the source and the target are the same database")
    check_source(source_url)  # both at the same schema revision
    upgrade(target_url)
    filled = {name: n for name, n in row_counts(target_url).items() if n}
    if filled:
        raise CopyError(f"the target already holds data ({', '.join(sorted(filled))}); copy "
                        "into an empty database")
    copied: dict[str, int] = {}
    target = get_engine(target_url)
    with get_engine(source_url).connect() as reader, target.begin() as writer:
        for table in _tables():
            copied[table.name] = 0
            result = reader.execution_options(stream_results=True).execute(
                sa.select(table).order_by(*table.primary_key.columns))
            while rows := result.mappings().fetchmany(BATCH):
                writer.execute(table.insert(), [dict(row) for row in rows])
                copied[table.name] += len(rows)
                if progress:
                    progress(len(rows))
        if writer.dialect.name == "postgresql":
            _advance_sequences(writer)
    analyze(target_url)
    return copied


def analyze(url: str) -> None:
    """On PostgreSQL, gather the planner's statistics of every table after a bulk load: until
    autovacuum does (and where it is off, never) the planner guesses thousands of rows for a
    lookup of twenty and picks plans ten times slower. SQLite plans without them."""
    engine = get_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE " + ", ".join(t.name for t in _tables()))


def _advance_sequences(connection: sa.Connection) -> None:
    """Rows came with their ids: move each id sequence past the largest, so new rows get
    fresh ones."""
    for table in _tables():
        key = list(table.primary_key.columns)
        if len(key) == 1 and isinstance(key[0].type, sa.Integer) and key[0].autoincrement:
            sequence = connection.scalar(sa.text("SELECT pg_get_serial_sequence(:t, :c)"),
                                         {"t": table.name, "c": key[0].name})
            if sequence:
                connection.execute(sa.text(
                    f"SELECT setval(:s, COALESCE((SELECT max({key[0].name}) FROM "
                    f"{table.name}), 0) + 1, false)"), {"s": sequence})


def _shown(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)
