"""The `immunofeed` command's failure modes: one clear line on stderr, a non-zero exit."""

import pytest

from db import settings
from tests.conftest import FIXTURES, run_cli


def _one_line_error(result):
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_init_db_creates_the_default_sqlite_file(tmp_path):
    result = run_cli("init-db", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "var" / "immunofeed.db").is_file()
    assert "database ready" in result.stdout


@pytest.mark.parametrize("url,expected", [
    ("not a url", "not a database URL"),
    ("postgresql+psycopg://nobody@127.0.0.1:1/none", "database postgresql+psycopg://nobody@"),
    ("nosuchdb://x/y", "not a database URL: unknown kind 'nosuchdb'"),
    ("sqlite:////proc/immunofeed/x.db", "cannot create the database folder"),
])
def test_bad_database_urls(url, expected):
    line = _one_line_error(run_cli("init-db", db_url=url))
    assert expected in line


def test_password_is_never_printed():
    line = _one_line_error(run_cli("init-db",
                                   db_url="postgresql+psycopg://u:s3cret@127.0.0.1:1/none"))
    assert "s3cret" not in line and "***" in line


def test_missing_and_broken_sources_files(tmp_path):
    assert "no such sources file" in _one_line_error(
        run_cli("crawl", "--sources", str(tmp_path / "nope.toml"), cwd=tmp_path))
    bad = tmp_path / "bad.toml"
    bad.write_text("[[sources]\nname=", encoding="utf-8")
    assert "not valid TOML" in _one_line_error(run_cli("crawl", "--sources", str(bad),
                                                       cwd=tmp_path))
    bad.write_text('[[sources]]\nname = "x"\ntype = "feed"\nurl = "ftp://example.org/f"\n')
    assert "url must be an http(s) URL" in _one_line_error(
        run_cli("crawl", "--sources", str(bad), cwd=tmp_path))
    bad.write_text('[[sources]]\nname = "x"\ntype = "carrier-pigeon"\nurl = "https://a.b/"\n')
    assert "unknown type" in _one_line_error(run_cli("crawl", "--sources", str(bad),
                                                     cwd=tmp_path))
    bad.write_text('[[sources]]\nname = "x"\nurl = "https://a.b/"\n'
                   '[[sources]]\nname = "x"\nurl = "https://c.d/"\n')
    assert "repeated: x" in _one_line_error(run_cli("crawl", "--sources", str(bad), cwd=tmp_path))


def test_crawl_where_every_source_fails_exits_non_zero(tmp_path, sample_site):
    sources = tmp_path / "s.toml"
    sources.write_text(f'[[sources]]\nname = "gone"\nurl = "{sample_site.url}/gone.xml"\n')
    result = run_cli("crawl", "--sources", str(sources), "-s", "DOWNLOAD_DELAY=0", cwd=tmp_path)
    assert result.returncode == 1
    assert "ERROR feed: feed 'gone': HTTP 404" in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last == "Error: every source failed; nothing was crawled"


def test_bad_set_option(tmp_path):
    result = run_cli("crawl", "-s", "NOEQUALS", cwd=tmp_path)
    assert result.returncode == 2 and "expected NAME=VALUE" in result.stderr


def test_settings_lists_every_setting():
    result = run_cli("settings")
    for setting in settings.SETTINGS:
        assert setting.env in result.stdout


def test_every_setting_is_documented_in_the_readme():
    readme = (FIXTURES.parent.parent / "README.md").read_text(encoding="utf-8")
    for setting in settings.SETTINGS:
        assert setting.env in readme, f"{setting.env} missing from README.md"
