"""The sources file: `[[sources]]` tables with name, type and url (TOML)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_SOURCES = Path(__file__).parent / "sources.toml"
# Each type's own options (besides name, type, url, fetch_pages, topical, interval) and its
# default url.
TYPE_OPTIONS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "feed": {},
    "sitemap": {},
    "pubmed": {"query": str, "days": int, "max_results": int, "api_key": str, "tool": str,
               "email": str},
    "clinicaltrials": {"cond": str, "intr": str, "term": str, "days": int, "max_results": int},
    "europepmc": {"query": str, "preprints_only": bool, "max_results": int},
}
DEFAULT_URLS = {
    "pubmed": "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/",
    "clinicaltrials": "https://clinicaltrials.gov/api/v2/",
    "europepmc": "https://www.ebi.ac.uk/europepmc/webservices/rest/",
}
SOURCE_TYPES = tuple(TYPE_OPTIONS)


class SourcesError(ValueError):
    """The sources file is missing or wrong; the message says where."""


@dataclass(frozen=True)
class SourceConfig:
    name: str
    type: str
    url: str
    fetch_pages: bool = True  # follow each entry's link for the full text
    topical: bool = False  # everything it returns is on topic: keep it all
    interval: int | None = None  # minutes between crawls under `immunofeed run`
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


def _source(path: Path, index: int, table: object) -> SourceConfig:
    where = f"{path}: source {index}"
    if not isinstance(table, dict):
        raise SourcesError(f"{where}: expected a [[sources]] table")
    name = table.get("name")
    if not isinstance(name, str) or not name.strip():
        raise SourcesError(f"{where}: needs a name")
    where = f"{path}: source {name!r}"
    type_ = table.get("type", "feed")
    if type_ not in SOURCE_TYPES:
        raise SourcesError(f"{where}: unknown type {type_!r} (known: {', '.join(SOURCE_TYPES)})")
    url = table.get("url", DEFAULT_URLS.get(type_))
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise SourcesError(f"{where}: url must be an http(s) URL, got {url!r}")
    flags = {}
    for flag, default in (("fetch_pages", True), ("topical", type_ != "feed")):
        flags[flag] = table.get(flag, default)
        if not isinstance(flags[flag], bool):
            raise SourcesError(f"{where}: {flag} must be true or false")
    interval = table.get("interval")
    if interval is not None and (isinstance(interval, bool) or not isinstance(interval, int)
                                 or interval < 1):
        raise SourcesError(f"{where}: interval must be a whole number of minutes, at least 1")
    options = {}
    allowed = TYPE_OPTIONS[type_]
    for key, value in table.items():
        if key in ("name", "type", "url", "fetch_pages", "topical", "interval"):
            continue
        if key not in allowed:
            known = ", ".join(allowed) or "none"
            raise SourcesError(f"{where}: unknown option {key!r} for type {type_!r} "
                               f"(known: {known})")
        if not isinstance(value, allowed[key]) or (isinstance(value, bool)
                                                     and allowed[key] is not bool):
            raise SourcesError(f"{where}: {key} must be a {allowed[key].__name__}")
        options[key] = value
    return SourceConfig(name=name.strip(), type=type_, url=url, options=options,
                        interval=interval, **flags)


def load_sources(path: Path | str | None = None) -> list[SourceConfig]:
    path = Path(path) if path else DEFAULT_SOURCES
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SourcesError(f"no such sources file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SourcesError(f"cannot read sources file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SourcesError(f"{path}: not valid TOML ({exc})") from None
    tables = data.get("sources", [])
    if not isinstance(tables, list):
        raise SourcesError(f"{path}: 'sources' must be a list of [[sources]] tables")
    sources = [_source(path, i, t) for i, t in enumerate(tables, 1)]
    names = [s.name for s in sources]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SourcesError(f"{path}: source names must be unique; repeated: {', '.join(repeated)}")
    return sources


def write_sources(path: Path, sources: list[SourceConfig]) -> None:
    """Write SOURCES as a sources file (used by the demo for its local sample site)."""
    lines = []
    for s in sources:
        lines += [
            "[[sources]]",
            f"name = {_toml_string(s.name)}",
            f"type = {_toml_string(s.type)}",
            f"url = {_toml_string(s.url)}",
            f"fetch_pages = {'true' if s.fetch_pages else 'false'}",
            f"topical = {'true' if s.topical else 'false'}",
            *([f"interval = {s.interval}"] if s.interval else []),
            *(f"{key} = {_toml_value(value)}" for key, value in s.options.items()),
            "",
        ]
    path.write_text("\n".join(lines), encoding="utf-8")


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int) else _toml_string(str(value))


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
