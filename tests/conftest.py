"""Shared fixtures: temporary SQLite databases, the Flask app and client, the local sample site,
and a helper that runs the real `immunofeed` command in a subprocess."""

from __future__ import annotations

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


def app_client(database_url: str):  # -> flask.testing.FlaskClient
    """A test client of the app reading DATABASE_URL."""
    from webapp import create_app

    return create_app({"TESTING": True, "DATABASE_URL": database_url}).test_client()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A fresh, migrated database with the vocabulary loaded."""
    from webapp.cli import prepare_database

    url = sqlite_url(tmp_path / "immunofeed.db")
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
    url = sqlite_url(tmp_path_factory.mktemp("crawled") / "immunofeed.db")
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


PG_URL = os.environ.get("IMMUNOFEED_TEST_POSTGRES_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_url():
    """A schema of its own on the real PostgreSQL server, as a database URL; dropped after."""
    engine = sa.create_engine(PG_URL)
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI: {exc.orig}")
        pytest.skip(f"no PostgreSQL at {PG_URL}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with engine.begin() as c:
        c.execute(sa.text(f"CREATE SCHEMA {schema}"))
    yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    with engine.begin() as c:
        c.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()
