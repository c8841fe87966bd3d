"""Engines and sessions. One engine per database URL, made on first use."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from db import listing, settings


class DatabaseUrlError(ValueError):
    """The configured database URL cannot be understood."""


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # Let SQLAlchemy, not the sqlite3 module, begin transactions (below): otherwise SAVEPOINTs,
    # which let one failed item roll back alone inside a batch, do not work.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets the web app read while a crawl writes; foreign keys make cascades real.
    # synchronous=NORMAL is SQLite's advice for WAL: still consistent and safe when a process is
    # killed, only a power cut can undo the last commits; each commit no longer waits for fsync.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


# One engine (and its session factory) per database URL, the least recently used closed when
# more are open: an engine dropped without dispose() leaves its pooled connections to be closed
# whenever the garbage collector comes by.
MAX_ENGINES = 8


class _Cached:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        # Writers on SQLite take the write lock when their transaction begins: a transaction
        # that reads and then writes while another process committed meanwhile is refused
        # outright (SQLITE_BUSY), without waiting. Readers stay deferred, so they never block.
        self.writer = engine.execution_options(sqlite_immediate=True)
        self.writer_sessions = sessionmaker(self.writer, expire_on_commit=False)


_engines: OrderedDict[str, _Cached] = OrderedDict()
_engines_lock = threading.Lock()


def _cached(url: str | None) -> _Cached:
    url = url or settings.database_url()
    with _engines_lock:
        found = _engines.get(url)
        if found is not None:
            _engines.move_to_end(url)
            return found
        found = _engines[url] = _Cached(_create_engine(url))
        while len(_engines) > MAX_ENGINES:
            _, oldest = _engines.popitem(last=False)
            oldest.engine.dispose()
        return found


def get_engine(url: str | None = None, writer: bool = False) -> Engine:
    """The engine for URL; WRITER: one whose transactions will write while other processes
    may be writing too (see _Cached)."""
    cached = _cached(url)
    return cached.writer if writer else cached.engine


def advisory_lock_key(name: str) -> int:
    """A PostgreSQL advisory lock's 64-bit key for the lock called NAME."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def lock_schema(connection: Connection) -> None:
    """Hold the database's schema lock until CONNECTION's transaction ends, so that processes
    starting together (several crawlers, web workers) migrate, load the vocabulary and register
    their sources one after the other: on PostgreSQL an advisory lock (two inserting the same
    source at once would otherwise fail on its unique name); on SQLite a writer's transaction
    already excludes the others."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                           {"key": advisory_lock_key("immunofeed schema")})


# Settings of every PostgreSQL session, after those the URL's own "options" give. psycopg
# prepares a statement run five times, and PostgreSQL then plans it once for any parameters
# (a generic plan) when that plan's estimate looks no worse: for the searches, whose best plan
# depends on the ids and words given, it was not (ranking a broad search's 10,000 newest
# matches by their range of ids: 40-60 ms planned for its values, 230-300 ms generic). Each
# execution is planned for its own values instead; planning costs well under a millisecond.
POSTGRES_OPTIONS = "-c plan_cache_mode=force_custom_plan"


def _create_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseUrlError(f"not a database URL: {url!r}") from exc
    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite:
        try:
            settings.ensure_sqlite_dir(url)
        except OSError as exc:
            raise DatabaseUrlError(f"cannot create the database folder: {exc}") from None
    options = {}
    if parsed.get_backend_name() == "postgresql":
        given = parsed.query.get("options") or ()
        given = (given,) if isinstance(given, str) else given
        options["connect_args"] = {"options": " ".join((*given, POSTGRES_OPTIONS))}
    try:
        engine = (create_engine(parsed) if sqlite
                  else create_engine(parsed, pool_pre_ping=True, **options))
    except NoSuchModuleError:
        raise DatabaseUrlError(f"not a database URL: unknown kind {parsed.drivername!r}") from None
    except ModuleNotFoundError as exc:
        raise DatabaseUrlError(f"no driver installed for {parsed.drivername}: {exc}") from None
    if sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_begin(connection) -> None:  # type: ignore[no-untyped-def]
    # execution option sqlite_immediate: take the write lock now, waiting busy_timeout for it,
    # rather than fail later when a read transaction turns into a write
    immediate = connection.get_execution_options().get("sqlite_immediate", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def dispose_all() -> None:
    """Close every engine's pooled connections and forget the engines."""
    with _engines_lock:
        for cached in _engines.values():
            cached.engine.dispose()
        _engines.clear()
    listing.forget_all()


def reset_after_fork() -> None:
    """In a forked child: forget the parent's engines without closing their connections
    (they are the parent's to close), so this process opens its own."""
    with _engines_lock:
        for cached in _engines.values():
            cached.engine.dispose(close=False)
        _engines.clear()
    listing.forget_all()


def new_session(url: str | None = None, writer: bool = False) -> Session:
    """A session the caller commits and closes (for work batched over many calls). WRITER: it
    will write, and other processes may be writing too (see _Cached)."""
    cached = _cached(url)
    return (cached.writer_sessions if writer else cached.sessions)()


@contextmanager
def session_scope(url: str | None = None, writer: bool = False) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = new_session(url, writer)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
