"""`immunofeed tag --rebuild`: every stored article re-tagged with the current vocabulary, on
several processes, through the real console script and a real SQLite database."""

from sqlalchemy import select

from db.articles import ArticleData, upsert_article
from db.models import Article, ArticleConcept, Concept
from db.session import session_scope
from db.sources import get_or_create_source
from tests.conftest import run_cli

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


def test_rebuild_retags_every_article_and_a_second_run_changes_nothing(db_url):
    # stored as by an older tagger: no mentions, a stale summary, nothing filtered
    with session_scope(db_url) as s:
        get_or_create_source(s, "General News", "feed", "http://127.0.0.1/feed")
        for i, (title, body) in enumerate(ARTICLES):
            upsert_article(s, ArticleData(
                canonical_url=f"http://127.0.0.1/{i}", url=f"http://127.0.0.1/{i}",
                title=title, body=body, summary="stale", source_name="General News",
                mentions={"cancer": 1}))

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
