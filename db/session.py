"""Engines and sessions. One engine per database URL, made on first use."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from db import settings


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
_engines: OrderedDict[str, tuple[Engine, sessionmaker[Session]]] = OrderedDict()
_engines_lock = threading.Lock()


def _cached(url: str | None) -> tuple[Engine, sessionmaker[Session]]:
    url = url or settings.database_url()
    with _engines_lock:
        found = _engines.get(url)
        if found is not None:
            _engines.move_to_end(url)
            return found
        engine = _create_engine(url)
        found = _engines[url] = (engine, sessionmaker(engine, expire_on_commit=False))
        while len(_engines) > MAX_ENGINES:
            _, (oldest, _) = _engines.popitem(last=False)
            oldest.dispose()
        return found


def get_engine(url: str | None = None) -> Engine:
    return _cached(url)[0]


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
    try:
        engine = create_engine(parsed) if sqlite else create_engine(parsed, pool_pre_ping=True)
    except NoSuchModuleError:
        raise DatabaseUrlError(f"not a database URL: unknown kind {parsed.drivername!r}") from None
    except ModuleNotFoundError as exc:
        raise DatabaseUrlError(f"no driver installed for {parsed.drivername}: {exc}") from None
    if sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_begin(connection) -> None:  # type: ignore[no-untyped-def]
    connection.exec_driver_sql("BEGIN")


def reset_after_fork() -> None:
    """In a forked child: forget the parent's engines without closing their connections
    (they are the parent's to close), so this process opens its own."""
    with _engines_lock:
        for engine, _ in _engines.values():
            engine.dispose(close=False)
        _engines.clear()


def new_session(url: str | None = None) -> Session:
    """A session the caller commits and closes (for work batched over many calls)."""
    return _cached(url)[1]()


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = _cached(url)[1]()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
