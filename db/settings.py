"""Every ImmunoFeed setting in one place: name, default and help, read from IMMUNOFEED_* variables.

Declared as data so the CLI can list them (`immunofeed settings`) and a test can check that each
one is documented in the README.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    help: str

    @property
    def env(self) -> str:
        return f"IMMUNOFEED_{self.name}"

    def value(self) -> str:
        return os.environ.get(self.env, "") or self.default


class SettingError(ValueError):
    """A setting's value cannot be used."""


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "DATABASE_URL",
        "sqlite:///var/immunofeed.db",
        "SQLAlchemy URL of the database (SQLite by default; a relative SQLite path is taken from "
        "the working directory).",
    ),
    Setting(
        "BASE_URL",
        "",
        "Public URL of the site, used for absolute links in feeds and emails. Empty: taken from "
        "each request.",
    ),
    Setting(
        "SOURCES",
        "",
        "TOML file listing the sources to crawl. Empty: crawler/sources.toml shipped with the "
        "project.",
    ),
    Setting("SMTP_URL", "", "SMTP server for email digests, e.g. smtp://user:pass@host:587."),
    Setting(
        "MAIL_FROM",
        "ImmunoFeed <digest@localhost>",
        "From address of confirmation and digest emails; also the mailto: of List-Unsubscribe.",
    ),
    Setting(
        "SECRET_KEY",
        "",
        "Key that signs confirm, manage and unsubscribe links and form tokens. Empty: a random "
        "key made once and kept in the database.",
    ),
    Setting(
        "DIGEST_HOUR",
        "7",
        "Hour of the day (UTC, 0-23) at which `immunofeed run` sends the digests.",
    ),
    Setting(
        "CRAWL_INTERVAL",
        "60",
        "Minutes between crawls of a source under `immunofeed run`, unless the sources file "
        "gives the source its own `interval`.",
    ),
    Setting("REDIS_URL", "", "Redis URL, e.g. redis://127.0.0.1:6379/0: the web workers share "
            "their rate-limit counters there, and crawler processes one queue of pages (each "
            "page fetched once by one of them). Empty: each process counts and crawls alone."),
    Setting(
        "PAGE_CACHE_MB",
        "32",
        "Megabytes of recent answers (search, concept and home pages, feeds, API lists) each web "
        "process keeps and sends again while no article or concept has changed; kept a minute "
        "at most. 0: off.",
    ),
    Setting(
        "TRUSTED_PROXIES",
        "0",
        "How many reverse proxies stand in front of the web app (nginx: 1). Their "
        "X-Forwarded-For/-Proto/-Host headers are believed, so rate limits count each reader, "
        "not the proxy. 0: such headers are ignored.",
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}


def get(name: str) -> str:
    """The value of setting NAME (without the IMMUNOFEED_ prefix), or its default."""
    return _BY_NAME[name].value()


def database_url() -> str:
    return get("DATABASE_URL")


def ensure_sqlite_dir(url: str) -> None:
    """Create the folder of a file-backed SQLite URL so the default works on a fresh clone."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + ":memory:"):
        path = url[len(prefix) :].split("?", 1)[0]
        if path:
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
