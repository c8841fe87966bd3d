"""`immunofeed tag --rebuild`: every stored article re-tagged with the current vocabulary, on
several processes, through the real console script and a real SQLite database."""

import os
import re
import signal
import socket
import subprocess
import time

from sqlalchemy import func, select

from db.articles import ArticleData, upsert_article
from db.models import Article, ArticleConcept, Concept, RetagChunk, RetagRun
from db.session import session_scope
from db.sources import get_or_create_source
from tests.conftest import IMMUNOFEED, cli_env, run_cli

ARTICLES = [
    ("Tebentafusp extends survival in metastatic uveal melanoma",
     "The bispecific tebentafusp improved overall survival in uveal melanoma in a phase 3 "
     "trial (NCT03070392), investigators reported."),
    ("Council approves a new car park",
     "The council approved plans for a car park near the station on Tuesday."),
    ("CAR-T therapy ide-cel in myeloma",
     "Idecabtagene vicleucel, a BCMA-directed CAR-T cell therapy, produced durable responses "
     "in relapsed multiple myeloma."),
]


def _stored_tags(url):
    with session_scope(url) as s:
        rows = s.execute(select(Article.title, Concept.slug)
                         .join(ArticleConcept, ArticleConcept.article_id == Article.id)
                         .join(Concept, Concept.id == ArticleConcept.concept_id)).all()
        articles = {a.title: a for a in s.scalars(select(Article))}
        details = {t: (a.summary, a.filtered, dict(a.extra or {})) for t, a in articles.items()}
    tags: dict[str, set[str]] = {}
    for title, slug in rows:
        tags.setdefault(title, set()).add(slug)
    return tags, details


def _older_tagger_articles(url):
    """ARTICLES from a general source, stored as by an older tagger: "cancer" their only
    mention, a stale summary, nothing filtered."""
    with session_scope(url) as s:
        get_or_create_source(s, "General News", "feed", "http://127.0.0.1/feed")
        for i, (title, body) in enumerate(ARTICLES):
            upsert_article(s, ArticleData(
                canonical_url=f"http://127.0.0.1/{i}", url=f"http://127.0.0.1/{i}",
                title=title, body=body, summary="stale", source_name="General News",
                mentions={"cancer": 1}))


def test_rebuild_retags_every_article_and_a_second_run_changes_nothing(db_url):
    _older_tagger_articles(db_url)

    result = run_cli("tag", "--rebuild", "--jobs", "2", db_url=db_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "re-tagged 3 articles, 3 changed"
    assert "re-tagging" in result.stderr and "Traceback" not in result.stderr

    tags, details = _stored_tags(db_url)
    assert tags[ARTICLES[0][0]] == {"tebentafusp", "uveal-melanoma"}
    assert {"idecabtagene-vicleucel", "bcma", "multiple-myeloma"} <= tags[ARTICLES[2][0]]
    assert ARTICLES[1][0] not in tags  # no concept left on the car park
    summary, filtered, extra = details[ARTICLES[0][0]]
    assert summary != "stale" and "tebentafusp" in summary.lower() and not filtered
    assert extra["labels"]["phase"] == "3" and extra["cites"] == {"nct_id": ["NCT03070392"]}
    assert details[ARTICLES[1][0]][1] is True  # off topic, from a general source: filtered

    again = run_cli("tag", "--rebuild", db_url=db_url)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "re-tagged 3 articles, 0 changed"


def test_rebuild_of_an_empty_database(db_url):
    result = run_cli("tag", "--rebuild", db_url=db_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "re-tagged 0 articles, 0 changed"


def test_rebuild_with_an_unreachable_database_is_one_clear_line():
    result = run_cli("tag", "--rebuild", db_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: database postgresql+psycopg://nobody@127.0.0.1:1/none")


def _stale_articles(url, n):
    """N articles stored as by an older tagger (no tags), each mentioning a known therapy."""
    with session_scope(url) as s:
        for i in range(n):
            title, body = ARTICLES[i % 3]
            upsert_article(s, ArticleData(
                canonical_url=f"http://127.0.0.1/s{i}", url=f"http://127.0.0.1/s{i}",
                title=f"{title} ({i})", body=body, summary="stale", mentions={}))


def _counts(out):
    articles, changed = re.fullmatch(r"re-tagged (\d+) articles, (\d+) changed.*",
                                     out.strip()).groups()
    return int(articles), int(changed)


def test_two_processes_share_one_rebuild(db_url):
    _stale_articles(db_url, 600)
    command = [IMMUNOFEED, "tag", "--rebuild", "--jobs", "1", "--chunk-size", "25"]
    workers = [subprocess.Popen(command, env=cli_env(db_url), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(w.communicate(timeout=300), w.returncode) for w in workers]
    for (_, err), code in results:
        assert code == 0, err
    counts = [_counts(out) for (out, _), _ in results]
    assert sum(a for a, _ in counts) == 600  # every article re-tagged by exactly one of them
    assert sum(c for _, c in counts) == 600  # each had a stale summary
    assert all(a > 0 for a, _ in counts), counts  # both took part
    tags, _ = _stored_tags(db_url)
    assert len(tags) == 400  # the car-park third has no concept
    with session_scope(db_url) as s:
        run = s.scalars(select(RetagRun)).one()
        assert run.finished_at is not None
        chunks = s.scalars(select(RetagChunk)).all()
        assert len(chunks) == 24 and all(c.done_at for c in chunks)
        assert {c.worker for c in chunks} == {f"{socket.gethostname()}:{w.pid}" for w in workers}


def test_a_killed_rebuild_resumes_where_it_stopped(db_url):
    _stale_articles(db_url, 900)
    command = [IMMUNOFEED, "tag", "--rebuild", "--jobs", "1", "--chunk-size", "50"]
    first = subprocess.Popen(command, env=cli_env(db_url), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    done = 0
    while done < 2 and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.05)
        with session_scope(db_url) as s:
            done = s.scalar(select(func.count()).select_from(RetagChunk)
                            .where(RetagChunk.done_at.is_not(None)))
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    with session_scope(db_url) as s:
        done_before = sum(c.articles for c in s.scalars(
            select(RetagChunk).where(RetagChunk.done_at.is_not(None))))
    assert 0 < done_before < 900, "the kill should land mid-run"

    again = run_cli("tag", "--rebuild", "--jobs", "1", db_url=db_url)
    assert again.returncode == 0, again.stderr
    articles, _ = _counts(again.stdout)
    assert articles == 900 - done_before  # only what was left, the killed chunk included
    tags, details = _stored_tags(db_url)
    assert len(tags) == 600 and all(d[0] != "stale" for d in details.values())
    with session_scope(db_url) as s:
        assert s.scalars(select(RetagRun)).one().finished_at is not None

    fresh = run_cli("tag", "--rebuild", "--jobs", "1", db_url=db_url)  # a finished run: anew
    assert _counts(fresh.stdout) == (900, 0)


def test_an_article_the_tagger_fails_on_keeps_its_tags_and_is_named(db_url, monkeypatch):
    """A fault of the tagger's own on one article (made to happen here: no real text is known to
    cause one) leaves that article as it was, re-tags the others, and ends in one line naming
    the article, with a non-zero exit."""
    from click.testing import CliRunner

    import crawler.retag
    from webapp.cli import cli

    _older_tagger_articles(db_url)
    with session_scope(db_url) as s:
        failing_id = s.scalar(select(Article.id).where(Article.title == ARTICLES[0][0]))
    real = crawler.retag.tag_text

    def failing_on_tebentafusp(title, body):
        if "Tebentafusp" in title:
            raise ValueError("no such concept\nmore")
        return real(title, body)

    monkeypatch.setattr(crawler.retag, "tag_text", failing_on_tebentafusp)
    result = CliRunner().invoke(cli, ["tag", "--rebuild", "--jobs", "1"],
                                env={"IMMUNOFEED_DATABASE_URL": db_url})
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert lines[-2] == "re-tagged 2 articles, 2 changed"
    assert lines[-1] == (f"Error: the tagger failed on article {failing_id} (ValueError: "
                         "no such concept); their earlier tags are kept (a fault to report)")
    tags, details = _stored_tags(db_url)
    assert tags[ARTICLES[0][0]] == {"cancer"} and details[ARTICLES[0][0]][0] == "stale"
    assert {"idecabtagene-vicleucel", "multiple-myeloma"} <= tags[ARTICLES[2][0]]
    assert details[ARTICLES[2][0]][0] != "stale"
