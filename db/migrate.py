"""Alembic, driven from code: `immunofeed init-db` and the tests call upgrade()."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

from db.session import get_engine, lock_schema

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@contextmanager
def schema_transaction(url: str) -> Iterator[Connection]:
    """A transaction holding the database's schema lock, so that processes starting together
    (several crawlers, a web worker) migrate and load the vocabulary one after the other instead
    of failing on each other: an advisory lock on PostgreSQL, a write lock taken up front on
    SQLite (which would otherwise refuse the second writer outright)."""
    with get_engine(url, writer=True).connect() as connection, connection.begin():
        lock_schema(connection)
        yield connection


def upgrade(url: str, revision: str = "head", connection: Connection | None = None) -> None:
    """Bring the database at URL to REVISION, creating it if need be. Safe to repeat, and safe
    to run from several processes at once."""
    if connection is None:
        with schema_transaction(url) as connection:
            upgrade(url, revision, connection)
        return
    config = alembic_config(url)
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def downgrade(url: str, revision: str) -> None:
    engine = get_engine(url)
    config = alembic_config(url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
