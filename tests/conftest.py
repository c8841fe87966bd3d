"""Shared fixtures: temporary databases, the Flask app and client, the local sample site, and a
helper that runs the real `immunofeed` command in a subprocess.

Tests get their databases from `new_db_url`: SQLite files by default, or, when
IMMUNOFEED_TEST_DATABASE_URL names a PostgreSQL server (`make test DB=postgres`), a schema of
their own there, dropped when the run ends. Tests about one backend name it themselves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from crawler.samplesite import SampleSite, render
from crawler.sources import SourceConfig, write_sources
from db.articles import ArticleData, upsert_article
from db.session import session_scope

FIXTURES = Path(__file__).parent / "fixtures"
IMMUNOFEED = str(Path(sys.executable).parent / "immunofeed")
# Tests crawl only 127.0.0.1, so the polite delays real sites get are not needed here.
FAST = ["-s", "DOWNLOAD_DELAY=0", "-s", "AUTOTHROTTLE_ENABLED=false"]


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


# The backend the whole suite runs on: unset means SQLite files under each test's tmp_path.
TEST_DATABASE_URL = os.environ.get("IMMUNOFEED_TEST_DATABASE_URL", "")
PG_URL = os.environ.get("IMMUNOFEED_TEST_POSTGRES_URL",
                        TEST_DATABASE_URL or "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_schemas: list[str] = []


def _pg_engine() -> sa.Engine:
    engine = sa.create_engine(PG_URL, poolclass=sa.pool.NullPool)
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as exc:
        if os.environ.get("CI") or TEST_DATABASE_URL:
            pytest.fail(f"PostgreSQL is required here: {exc.orig}")
        pytest.skip(f"no PostgreSQL at {PG_URL}")
    return engine


def new_pg_url() -> str:
    """A new, empty schema on the PostgreSQL server, as a database URL (dropped at the end)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with _pg_engine().begin() as c:
        c.execute(sa.text(f"CREATE SCHEMA {schema}"))
    _schemas.append(schema)
    url = sa.engine.make_url(PG_URL)
    return url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False)


def new_db_url(folder: Path, name: str = "immunofeed.db") -> str:
    """A new, empty database on the backend this run targets."""
    if TEST_DATABASE_URL.startswith("postgresql"):
        return new_pg_url()
    if TEST_DATABASE_URL and not TEST_DATABASE_URL.startswith("sqlite"):
        pytest.fail(f"IMMUNOFEED_TEST_DATABASE_URL: unsupported backend {TEST_DATABASE_URL!r}")
    return sqlite_url(folder / name)


@pytest.fixture(scope="session", autouse=True)
def _drop_test_schemas() -> Iterator[None]:
    yield
    if not _schemas:
        return
    from db.session import dispose_all

    dispose_all()  # this process's cached engines: their connections go before the drop
    engine = _pg_engine()
    for schema in _schemas:  # one transaction each: dropping hundreds at once runs out of locks
        with engine.begin() as c:
            c.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))


def stored_json(value: object) -> object:
    """A JSON column read with plain SQL: text on SQLite, already decoded on PostgreSQL."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def stored_titles(url: str) -> list[str]:
    """The titles of the articles stored at URL, read on a connection of its own (none while
    its tables do not exist yet)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as c:
            return [t for (t,) in c.execute(sa.text("SELECT title FROM articles"))]
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):  # no tables yet
        return []


def cli_env(db_url: str | None = None, **settings: str) -> dict[str, str]:
    """This process's environment without its IMMUNOFEED_* variables, plus DB_URL and SETTINGS
    (given without the prefix: SMTP_URL=...)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMMUNOFEED_")}
    if db_url:
        env["IMMUNOFEED_DATABASE_URL"] = db_url
    env.update({f"IMMUNOFEED_{name}": value for name, value in settings.items()})
    return env


def run_cli(*args: str, db_url: str | None = None, input: str | None = None,
            cwd: Path | None = None, timeout: float = 180,
            settings: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = cli_env(db_url, **(settings or {}))
    return subprocess.run(
        [IMMUNOFEED, *args], input=input, capture_output=True, text=True, env=env, cwd=cwd,
        timeout=timeout,
    )


def app_client(database_url: str, **config: object):  # -> flask.testing.FlaskClient
    """A test client of the app reading DATABASE_URL (with CONFIG's settings besides)."""
    from webapp import create_app

    return create_app({"TESTING": True, "DATABASE_URL": database_url, **config}).test_client()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A fresh, migrated database with the vocabulary loaded."""
    from webapp.cli import prepare_database

    url = new_db_url(tmp_path)
    prepare_database(url)
    return url


@pytest.fixture(scope="session")
def sample_site() -> Iterator[SampleSite]:
    with SampleSite(static=FIXTURES / "feeds") as site:
        yield site


def sample_sources(site: SampleSite) -> list[SourceConfig]:
    return [
        SourceConfig(name=f"Oncology Wire {name}", type="feed", url=site.feed_url(name))
        for name in render.FEEDS
    ]


@pytest.fixture(scope="session")
def sample_sources_file(sample_site: SampleSite, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sources") / "sources.toml"
    write_sources(path, sample_sources(sample_site))
    return path


@pytest.fixture(scope="session")
def crawled_db(sample_sources_file: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database filled by one real crawl of the sample site (read-only for the tests)."""
    url = new_db_url(tmp_path_factory.mktemp("crawled"))
    result = run_cli("crawl", "--sources", str(sample_sources_file), *FAST, db_url=url)
    assert result.returncode == 0, result.stderr
    return url


@pytest.fixture
def app(crawled_db: str):
    from webapp import create_app

    return create_app({"TESTING": True, "DATABASE_URL": crawled_db})


@pytest.fixture
def client(app):
    return app.test_client()


NOW = datetime.now(UTC)
TAGGED_ARTICLES = [  # title, days ago, mentions, filtered
    ("Pembrolizumab in melanoma", 40, {"pembrolizumab": 2, "melanoma": 1}, False),
    ("Nivolumab in melanoma", 20, {"nivolumab": 1, "melanoma": 1, "pd-l1": 1}, False),
    ("Pembrolizumab in NSCLC", 10, {"pembrolizumab": 1, "non-small-cell-lung-cancer": 1}, False),
    ("Off-topic item naming pembrolizumab", 5, {"pembrolizumab": 1, "melanoma": 1}, True),
    ("Pembrolizumab in melanoma, years ago", 1200, {"pembrolizumab": 1, "melanoma": 1}, False),
]


@pytest.fixture
def tagged_db(db_url: str) -> str:
    """A fresh database holding TAGGED_ARTICLES (known tags, dates and one label set)."""
    with session_scope(db_url) as s:
        for i, (title, days, mentions, filtered) in enumerate(TAGGED_ARTICLES):
            upsert_article(s, ArticleData(
                canonical_url=f"http://127.0.0.1/a{i}", url=f"http://127.0.0.1/a{i}",
                title=title, body=title + ".", summary=title + ".", mentions=mentions,
                published_at=NOW - timedelta(days=days), filtered=filtered,
                extra={"labels": {"types": ["trial-result"], "phase": "3",
                                  "settings": ["first-line"]}} if i == 2 else {}))
    return db_url


@pytest.fixture
def pg_url() -> str:
    """A schema of its own on the real PostgreSQL server, as a database URL."""
    return new_pg_url()
