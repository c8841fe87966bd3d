"""The same storage code on a real PostgreSQL server: migrations, the upsert, filters and the
full-text search through PostgreSQL's own weighted tsvector and GIN index."""

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from db.articles import ArticleData, upsert_article
from db.query import parse_query
from db.search import search_articles
from db.session import session_scope


def test_migrate_upsert_and_search_on_postgres(pg_url):
    from webapp.cli import prepare_database

    prepare_database(pg_url)
    prepare_database(pg_url)  # repeatable
    data = ArticleData(canonical_url="https://news.example/pg", url="https://news.example/pg",
                       title="Durvalumab in bladder cancer", body="A phase 3 trial.",
                       mentions={"durvalumab": 2, "bladder-cancer": 1})
    with session_scope(pg_url) as s:
        assert upsert_article(s, data)[0] == "new"
    with session_scope(pg_url) as s:
        assert upsert_article(s, data)[0] == "unchanged"
    with session_scope(pg_url) as s:
        page = search_articles(s, parse_query("durvalumab -mouse"), ["bladder-cancer"])
        assert [h.article.title for h in page.hits] == ["Durvalumab in bladder cancer"]
        assert {f.slug for f in page.facets["THERAPY"]} == {
            "durvalumab", "pd-l1-inhibitor", "immune-checkpoint-inhibitor", "immunotherapy"}
        assert search_articles(s, parse_query("durvalumab"), ["lung-cancer"]).total == 0


def test_journal_and_author_matching_on_postgres(pg_url):
    from datetime import UTC, datetime

    from db.evidence import journal_names, papers_named_in
    from webapp.cli import prepare_database

    prepare_database(pg_url)
    paper = ArticleData(canonical_url="https://pubmed.example/1", url="https://pubmed.example/1",
                        title="A paper", kind="paper", pmid="1",
                        published_at=datetime(2026, 10, 1, tzinfo=UTC),
                        extra={"journal": "Nature Medicine",
                               "authors": [{"name": "Ada Rosenthal"}]})
    with session_scope(pg_url) as s:
        _, paper_id = upsert_article(s, paper)
    with session_scope(pg_url) as s:
        journals = journal_names(s)
        assert journals == ["Nature Medicine"]
        text = "The team of Dr. Rosenthal reported in Nature Medicine that the cells persisted."
        assert papers_named_in(s, text, datetime(2026, 10, 20, tzinfo=UTC), journals) == \
            [paper_id]


def test_concept_page_counts_on_postgres(pg_url):
    from datetime import UTC, datetime, timedelta

    from db.concepts import articles_per_month, co_occurring, with_descendants
    from webapp.cli import prepare_database

    prepare_database(pg_url)
    now = datetime.now(UTC)
    with session_scope(pg_url) as s:
        for i, mentions in enumerate([{"nivolumab": 1, "melanoma": 1},
                                      {"pembrolizumab": 1, "melanoma": 2},
                                      {"pembrolizumab": 1, "renal-cell-carcinoma": 1}]):
            upsert_article(s, ArticleData(
                canonical_url=f"https://news.example/{i}", url=f"https://news.example/{i}",
                title=f"Item {i}", mentions=mentions, published_at=now - timedelta(days=i)))
    with session_scope(pg_url) as s:
        ids = with_descendants(s, "pd-1-inhibitor")
        months = articles_per_month(s, ids, today=now.date())
        together = co_occurring(s, ids)
    assert sum(n for _, n in months) == 3 and months[-1][0] == now.strftime("%Y-%m")
    assert [(c.slug, n) for c, n in together["CANCER"]] == [
        ("melanoma", 2), ("renal-cell-carcinoma", 1)]


def test_full_text_search_on_postgres_is_weighted_stemmed_and_indexed(pg_url):
    """Search through the articles' weighted tsvector (title A, summary B, body C) and its GIN
    index: stemming, phrases, OR, -word, prefix*, ranking and highlighted snippets."""
    import sqlalchemy as sa

    from db.search import MARK_START
    from db.session import get_engine
    from webapp.cli import prepare_database

    prepare_database(pg_url)
    texts = {
        "Nivolumab for melanoma": "A phase 3 trial of nivolumab.",
        "Checkpoint inhibitors this year": "Trials in advanced melanoma and other cancers.",
        "Two melanomas treated": "Both patients responded to the combination.",
        "A mouse model": "Melanoma grew slowly in the mouse model.",
        "Pembrolizumab approval": "The agency approved pembrolizumab for advanced disease.",
    }
    with session_scope(pg_url) as s:
        for n, (title, body) in enumerate(texts.items()):
            upsert_article(s, ArticleData(canonical_url=f"https://news.example/pg{n}",
                                          url=f"https://news.example/pg{n}", title=title,
                                          body=body))

    def titles(q: str, sort: str = "relevance") -> list[str]:
        with session_scope(pg_url) as s:
            return [h.article.title for h in search_articles(s, parse_query(q), sort=sort).hits]

    found = titles("melanoma")
    # in the title outweighs in the body
    assert set(found[:2]) == {"Nivolumab for melanoma", "Two melanomas treated"}
    assert set(found) == {"Nivolumab for melanoma", "Checkpoint inhibitors this year",
                          "Two melanomas treated", "A mouse model"}  # melanomas: stemmed
    assert "A mouse model" not in titles("melanoma -mouse")
    assert titles('"advanced melanoma"') == ["Checkpoint inhibitors this year"]
    assert set(titles("nivolumab OR pembrolizumab")) == {"Nivolumab for melanoma",
                                                         "Pembrolizumab approval"}
    assert titles("pembro*") == ["Pembrolizumab approval"]
    with session_scope(pg_url) as s:
        [hit] = search_articles(s, parse_query("combination"), []).hits
        assert hit.snippet and MARK_START in hit.snippet
    with get_engine(pg_url).connect() as c:
        c.execute(sa.text("SET enable_seqscan = off"))  # five rows: force the index's use
        plan = "\n".join(r[0] for r in c.execute(sa.text(
            "EXPLAIN SELECT id FROM articles WHERE search_vector @@ "
            "websearch_to_tsquery('english', 'melanoma')")))
    assert "ix_articles_search_vector" in plan


PG_TEXTS = ["Relapse after therapy", "every article", "Every article counts", "PD-1 relapse",
            "the relapsed cells", "cells and the remission", "remission-free", "relapses",
            "nothing here", "an article on every thing", "Relapse"]


@pytest.fixture(scope="module")
def pg_texts():
    """Articles on PostgreSQL whose titles hold the words of PG_TEXTS, and their ids."""
    from tests.conftest import new_pg_url
    from webapp.cli import prepare_database

    url = new_pg_url()
    prepare_database(url)
    with session_scope(url) as s:
        ids = [upsert_article(s, ArticleData(
            canonical_url=f"https://news.example/t{i}", url=f"https://news.example/t{i}",
            title=text, body="" if i % 2 else text))[1] for i, text in enumerate(PG_TEXTS)]
    return url, set(ids)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["relapse", "relaps*", "Relapse", "every", "article",
                                 '"every article"', "cells", "the", "PD-1", "-remission",
                                 "-cells", "-the", "remission-free", "OR", "rel*", "nothing"]),
                min_size=1, max_size=4))
def test_what_a_search_does_not_match_on_postgres_is_every_article_but_its_matches(
        pg_texts, parts):
    """db/search.py asks PostgreSQL's GIN index for the articles a broad search does not match
    through the lexeme every article's vector holds (migration 0010): all rows less the
    matches, whatever the words, and a reader's words never make that lexeme."""
    from db.search import _pg_matching_ids, _pg_unmatched_ids

    url, everything = pg_texts
    q = parse_query(" ".join(parts))
    if q.is_empty:
        return
    with session_scope(url) as s:
        matched = set(_pg_matching_ids(s, q).tolist())
        assert set(_pg_unmatched_ids(s, q).tolist()) == everything - matched
    if q.groups and all(t.text.lower() in ("every", "article", "every article")
                        for group in q.groups for t in group):
        assert matched != everything


def test_sessions_plan_each_statement_for_its_values_and_keep_the_urls_options(pg_url):
    """Every PostgreSQL session plans each execution for its own parameters (db/session.py:
    generic plans of the searches were five times slower), on top of what the URL's own
    "options" set (here the test's schema)."""
    from sqlalchemy import text

    schema = pg_url.rsplit("search_path%3D", 1)[-1].split("&")[0]
    with session_scope(pg_url) as s:
        assert s.scalar(text("SHOW plan_cache_mode")) == "force_custom_plan"
        assert s.scalar(text("SHOW search_path")) == schema


def test_a_snippet_is_made_from_a_window_of_a_long_body(pg_url):
    """ts_headline parses all the text it is given, so a long body's snippet comes from the
    700 characters from a few words before the first word beginning with a stem of the query
    (hyphens and dots in a stem taken literally), not from the whole body."""
    from db.search import WINDOW_LEAD, WINDOW_WIDTH, _pg_stems, _pg_windows
    from webapp.cli import prepare_database

    prepare_database(pg_url)
    filler = "Nothing to see in this sentence at all. " * 100
    bodies = {1: f"{filler}Then CAR-T cells and example.com appeared. {filler}",
              2: f"{filler}Then car t cells appeared. A studio study found it.",  # no car-t
              3: "CAR-T at once."}
    with session_scope(pg_url) as s:
        for n, body in bodies.items():
            upsert_article(s, ArticleData(canonical_url=f"https://news.example/w{n}",
                                          url=f"https://news.example/w{n}", title=f"W{n}",
                                          body=body))
        ids = dict(s.execute(sa.text("SELECT title, id FROM articles")).all())

        def windows(words, stems, *among, lookalikes=()):
            """{title: (text, whole, hit)} of the windows for the search WORDS"""
            tsquery = s.scalar(sa.text("SELECT phraseto_tsquery('english', :w)::text"),
                               {"w": words})
            found = _pg_windows(s, tsquery, {ids[t]: (stems, set(lookalikes)) for t in among})
            titles = {i: t for t, i in ids.items()}
            return {titles[i]: (text, whole, hit) for i, _, whole, text, hit in found}

        assert _pg_stems(["car", "car-t", "t"]) == ["car-t"]  # car-t's parts left out
        assert _pg_stems(["t", "c"]) == ["t", "c"]  # but not all of them
        for words, short in (("car-t", False), ("example.com", True)):
            got = windows(words, [words], "W1", "W2", "W3")
            text, whole, hit = got["W1"]
            assert not whole and len(text) == WINDOW_WIDTH and text[hit:].startswith(
                "CAR-T cells" if words == "car-t" else "example.com")
            start = bodies[1].index(text)  # a piece of the body, from a word's start
            assert bodies[1][start - 1] == " " and 0 < hit <= WINDOW_LEAD
            assert got["W3"] == ("CAR-T at once.", short, 0)  # all of it either way
            assert got["W2"] == (bodies[2], True, 0)  # no car-t, no example.com
        text, whole, hit = windows("study", ["studi"], "W2")["W2"]
        assert not whole and text[hit:] == "studio study found it."  # studi: studio, study
        # a word that looked like a match and was not (studio, whose stem is studio) passed over
        text, whole, hit = windows("study", ["studi"], "W2", lookalikes={"studio"})["W2"]
        assert not whole and text[hit:] == "study found it."
    # a search's snippets come from those windows: the first match's, where the whole body's
    # ts_headline would pick the words around the most matches
    with session_scope(pg_url) as s:
        upsert_article(s, ArticleData(
            canonical_url="https://news.example/w4", url="https://news.example/w4", title="W4",
            body=f"Once tebentafusp. {filler}Then tebentafusp, tebentafusp and tebentafusp."))
        # the first window's word only looked like a match: the next window, from the next
        # such word that is not that one, not the whole body
        upsert_article(s, ArticleData(
            canonical_url="https://news.example/w5", url="https://news.example/w5", title="W5",
            body=f"Once tebentafuspian. {filler}Then tebentafusp won. {filler}"
                 "Tebentafusp, tebentafusp and tebentafusp."))
        # two words apart: ts_headline marks nothing in a window with one of them, and the
        # next window starts at the first word of the other
        upsert_article(s, ArticleData(
            canonical_url="https://news.example/w6", url="https://news.example/w6",
            title="W6", body=f"The state said. {filler}It stated this. {filler}A statement. "
                             f"{filler}The United States agreed. {filler}United States, "
                             "united states, the United States."))
        # one word in the title only: no passage of the body meets the query, and
        # ts_headline marks nothing, so the page shows the summary
        upsert_article(s, ArticleData(
            canonical_url="https://news.example/w7", url="https://news.example/w7",
            title="W7 tebentafusp", body=f"{filler}The uveal melanoma trial ended."))
        hits = search_articles(s, parse_query("tebentafusp")).hits
        snippets = {h.article.title: h.snippet for h in hits}
        for words in ("united states", "tebentafusp melanoma"):
            snippets.update((h.article.title, h.snippet)
                            for h in search_articles(s, parse_query(words)).hits)
    assert snippets["W4"].startswith("\ue000tebentafusp\ue001. Nothing to see"), snippets
    assert snippets["W5"].startswith("\ue000tebentafusp\ue001 won."), snippets
    assert "\ue000United\ue001 \ue000States\ue001 agreed." in snippets["W6"], snippets
    assert snippets["W7 tebentafusp"] is None
