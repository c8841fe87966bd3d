"""Storage on real SQLite files: migrations, the upsert, full-text search, filters, facets."""

from datetime import UTC, datetime

import sqlalchemy as sa

from db.articles import ArticleData, count_articles, upsert_article
from db.migrate import downgrade, upgrade
from db.models import Article
from db.query import parse_query
from db.search import search_articles
from db.session import get_engine, session_scope
from db.sources import get_or_create_source
from tests.conftest import new_db_url


def _article(n: int, **fields) -> ArticleData:
    values = {
        "canonical_url": f"https://news.example/{n}",
        "url": f"https://news.example/{n}?utm_source=x",
        "title": f"Story {n}",
        "body": "Nothing in particular.",
        "published_at": datetime(2026, 10, n % 28 + 1, tzinfo=UTC),
    }
    values.update(fields)
    return ArticleData(**values)


def _search(url, raw="", slugs=(), **kw):
    with session_scope(url) as s:
        page = search_articles(s, parse_query(raw), list(slugs), **kw)
        return [h.article.title for h in page.hits], page


def test_migrations_create_every_table_and_fts(tmp_path):
    url = new_db_url(tmp_path, "m.db")
    upgrade(url)
    upgrade(url)  # repeatable
    engine = get_engine(url)
    names = set(sa.inspect(engine).get_table_names())
    assert {"sources", "articles", "concepts", "article_concepts", "alembic_version"} <= names
    if engine.dialect.name == "sqlite":
        assert "article_fts" in names  # FTS5 index
    else:  # PostgreSQL: a generated tsvector column with its GIN index
        assert "search_vector" in {c["name"] for c in sa.inspect(engine).get_columns("articles")}
        assert "ix_articles_search_vector" in {
            i["name"] for i in sa.inspect(engine).get_indexes("articles")}
    downgrade(url, "base")
    assert "articles" not in set(sa.inspect(get_engine(url)).get_table_names())


def test_upsert_is_new_then_unchanged_then_updated(db_url):
    with session_scope(db_url) as s:
        assert upsert_article(s, _article(1, mentions={"melanoma": 2}))[0] == "new"
    with session_scope(db_url) as s:
        assert upsert_article(s, _article(1, mentions={"melanoma": 2}))[0] == "unchanged"
    with session_scope(db_url) as s:
        assert upsert_article(s, _article(1, title="Story 1, corrected"))[0] == "updated"
        assert count_articles(s) == 1
    titles, _ = _search(db_url, "corrected")
    assert titles == ["Story 1, corrected"]


def test_unknown_concepts_are_ignored_not_fatal(db_url):
    with session_scope(db_url) as s:
        outcome, _ = upsert_article(s, _article(2, mentions={"no-such-concept": 1}))
    assert outcome == "new"


def test_fts_index_follows_updates_and_deletes(db_url):
    with session_scope(db_url) as s:
        _, article_id = upsert_article(s, _article(3, body="tebentafusp in uveal melanoma"))
    assert _search(db_url, "tebentafusp")[0] == ["Story 3"]
    with session_scope(db_url) as s:
        upsert_article(s, _article(3, body="now about glofitamab"))
    assert _search(db_url, "tebentafusp")[0] == []
    assert _search(db_url, "glofitamab")[0] == ["Story 3"]
    with session_scope(db_url) as s:
        s.execute(sa.text("DELETE FROM articles WHERE id = :id"), {"id": article_id})
    assert _search(db_url, "glofitamab")[0] == []
    if get_engine(db_url).dialect.name == "sqlite":  # FTS5: the index agrees with its table
        with session_scope(db_url) as s:
            s.execute(sa.text("INSERT INTO article_fts(article_fts) VALUES ('integrity-check')"))


def test_title_ranks_above_body(db_url):
    with session_scope(db_url) as s:
        upsert_article(s, _article(4, title="Weekly roundup",
                                   body="durvalumab durvalumab durvalumab and more",
                                   published_at=datetime(2026, 11, 20, tzinfo=UTC)))
        upsert_article(s, _article(5, title="Durvalumab approved", body="A short note.",
                                   published_at=datetime(2026, 11, 1, tzinfo=UTC)))
    titles, _ = _search(db_url, "durvalumab")
    assert titles == ["Durvalumab approved", "Weekly roundup"]
    titles, _ = _search(db_url, "durvalumab", sort="date")
    assert titles == ["Weekly roundup", "Durvalumab approved"]


def test_concept_filter_includes_children_and_facets_count(db_url):
    with session_scope(db_url) as s:
        get_or_create_source(s, "Wire", "feed", "https://news.example/feed")
        upsert_article(s, _article(6, title="TNBC story", source_name="Wire",
                                   mentions={"triple-negative-breast-cancer": 2,
                                             "pembrolizumab": 1}))
        upsert_article(s, _article(7, title="Breast story",
                                   mentions={"breast-cancer": 1, "pembrolizumab": 3}))
        upsert_article(s, _article(8, title="Lung story", mentions={"lung-cancer": 1}))
    titles, page = _search(db_url, slugs=["breast-cancer"])
    assert sorted(titles) == ["Breast story", "TNBC story"]  # the child is included
    assert page.total == 2
    # a facet counts what clicking it shows: an article counts for its tags' ancestors too
    therapy = {f.slug: f.count for f in page.facets["THERAPY"]}
    assert therapy == {"pembrolizumab": 2, "pd-1-inhibitor": 2,
                       "immune-checkpoint-inhibitor": 2, "immunotherapy": 2}
    cancers = {f.slug: f.count for f in page.facets["CANCER"]}
    assert cancers == {"breast-cancer": 2, "triple-negative-breast-cancer": 1,
                       "solid-tumour": 2, "cancer": 2}
    assert _search(db_url, slugs=["triple-negative-breast-cancer"])[0] == ["TNBC story"]
    assert _search(db_url, slugs=["breast-cancer", "lung-cancer"])[0] == []
    assert _search(db_url, slugs=["no-such-slug"])[0] == []
    assert _search(db_url, "story", slugs=["lung-cancer"])[0] == ["Lung story"]


def test_paging_and_bounds(db_url):
    with session_scope(db_url) as s:
        for n in range(10, 35):
            upsert_article(s, _article(n, title=f"Paging item {n}"))
    first, page = _search(db_url, "paging", per_page=10)
    second, _ = _search(db_url, "paging", per_page=10, page=2)
    assert page.total == 25 and page.pages == 3
    assert len(first) == 10 and not set(first) & set(second)
    _, huge = _search(db_url, "paging", per_page=10_000)
    assert huge.per_page == 100


def test_datetimes_come_back_in_utc(db_url):
    with session_scope(db_url) as s:
        upsert_article(s, _article(40, published_at=datetime.fromisoformat(
            "2026-10-02T10:30:00+02:00")))
    _, page = _search(db_url, "story")
    assert page.hits[0].article.published_at == datetime(2026, 10, 2, 8, 30, tzinfo=UTC)


def test_one_work_one_record_by_identifier(db_url):
    paper = _article(50, title="Paper via PubMed", kind="paper", pmid="39000001",
                     doi="10.1000/xyz")
    with session_scope(db_url) as s:
        assert upsert_article(s, paper)[0] == "new"
    same_work = _article(51, title="Paper via Europe PMC", kind="paper", doi="10.1000/xyz",
                         pmcid="PMC123")
    with session_scope(db_url) as s:
        outcome, article_id = upsert_article(s, same_work)
        assert outcome == "updated" and count_articles(s) == 1
        row = s.get(Article, article_id)
        assert (row.pmid, row.doi, row.pmcid) == ("39000001", "10.1000/xyz", "PMC123")
        assert row.extra["links"] == [paper.url, same_work.url]


def test_trial_status_changes_are_kept_as_history(db_url):
    def trial(status):
        return _article(60, kind="trial", nct_id="NCT01234567", extra={"status": status})

    with session_scope(db_url) as s:
        upsert_article(s, trial("RECRUITING"))
    with session_scope(db_url) as s:
        assert upsert_article(s, trial("RECRUITING"))[0] == "unchanged"
    with session_scope(db_url) as s:
        outcome, article_id = upsert_article(s, trial("COMPLETED"))
        assert outcome == "updated"
        extra = s.get(Article, article_id).extra
    assert extra["status"] == "COMPLETED"
    assert [h["status"] for h in extra["status_history"]] == ["RECRUITING"]


def test_search_survives_a_migration_round_trip(tmp_path):
    url = new_db_url(tmp_path, "r.db")
    upgrade(url)
    downgrade(url, "0001")
    upgrade(url)
    with session_scope(url) as s:
        s.execute(sa.text("INSERT INTO articles (canonical_url, url, title, summary, body, "
                          "fetched_at) VALUES ('u', 'u', 'Lifileucel news', '', '', '2026-01-01')"))
    assert _search(url, "lifileucel")[0] == ["Lifileucel news"]


def test_concept_tokens_are_filled_in_for_articles_stored_before_them(tmp_path):
    url = new_db_url(tmp_path, "t.db")
    upgrade(url, "0007")
    with session_scope(url) as s:
        s.execute(sa.text("INSERT INTO concepts (id, label, slug, name, synonyms, xrefs) "
                          "VALUES (5, 'CANCER', 'melanoma', 'melanoma', '[]', '{}')"))
        s.execute(sa.text("INSERT INTO articles (id, canonical_url, url, title, summary, body, "
                          "fetched_at, added_at, kind, extra, relevance, filtered) VALUES "
                          "(1, 'u', 'u', 'Relapse news', '', '', '2026-01-01', '2026-01-01', "
                          "'news', '{}', 1.0, false), (2, 'v', 'v', 'Relapse too', '', '', "
                          "'2026-01-01', '2026-01-01', 'news', '{}', 1.0, false)"))
        s.execute(sa.text("INSERT INTO article_concepts (article_id, concept_id, mentions) "
                          "VALUES (1, 5, 1)"))
    upgrade(url, "0008")
    with session_scope(url) as s:
        assert s.execute(sa.text("SELECT id, tag_terms FROM articles ORDER BY id")).all() == [
            (1, "c5"), (2, "")]
    assert _search(url, "relapse", ["melanoma"])[0] == ["Relapse news"]
    assert sorted(_search(url, "relapse")[0]) == ["Relapse news", "Relapse too"]
    # then the token every article holds (0009; PostgreSQL its lexeme, 0010), and back
    for revision, terms in (("head", ["c0 c5", "c0"]), ("0008", ["c5", ""]),
                            ("head", ["c0 c5", "c0"])):
        (upgrade if revision == "head" else downgrade)(url, revision)
        with session_scope(url) as s:
            assert s.scalars(sa.text("SELECT tag_terms FROM articles ORDER BY id")).all() == terms
            if s.get_bind().dialect.name == "postgresql":  # its own lexemes since 0010, 0011
                lexeme = "SELECT count(*) FROM articles WHERE search_vector @@ $${}$$"
                assert s.scalar(sa.text(lexeme.format("'every article'"))) == (
                    2 if revision == "head" else 0)
                assert s.scalar(sa.text(lexeme.format("'concept 5'"))) == (
                    1 if revision == "head" else 0)
        assert _search(url, "concept 5")[0] == []  # a reader's words never make them
        assert _search(url, "relapse", ["melanoma"])[0] == ["Relapse news"]
        # by what the word does not match (it matches both articles)
        assert sorted(_search(url, "relapse", sort="date")[0]) == ["Relapse news", "Relapse too"]


def test_snippet_comes_from_the_body_not_the_title(db_url):
    with session_scope(db_url) as s:
        upsert_article(s, _article(70, title="Tebentafusp news",
                                   body="The bispecific tebentafusp extended survival."))
        upsert_article(s, _article(71, title="Tebentafusp only in the title",
                                   body="Nothing relevant here."))
    _, page = _search(db_url, "tebentafusp")
    snippets = {h.article.title: h.snippet for h in page.hits}
    assert snippets["Tebentafusp news"] == \
        "The bispecific \ue000tebentafusp\ue001 extended survival."
    assert snippets["Tebentafusp only in the title"] is None  # the page shows the summary


def test_snippet_comes_from_the_summary_where_the_body_does_not_match(db_url):
    with session_scope(db_url) as s:
        upsert_article(s, _article(72, title="One", summary="Tebentafusp in the summary only.",
                                   body="Nothing relevant here."))
        upsert_article(s, _article(73, title="Two", summary="Tebentafusp in the summary too.",
                                   body="The body names tebentafusp as well."))
    _, page = _search(db_url, "tebentafusp")
    snippets = {h.article.title: h.snippet for h in page.hits}
    assert snippets == {"One": "\ue000Tebentafusp\ue001 in the summary only.",
                        "Two": "The body names \ue000tebentafusp\ue001 as well."}


# about 2,000 characters of words no query below matches
_FILLER = " ".join(f"Paragraph {i} goes on about the weather and the harvest." for i in range(40))


def test_snippet_of_a_long_body_shows_its_match_from_a_whole_word(db_url):
    """(On PostgreSQL from a window of the body near the match, db.search._pg_windows.)"""
    bodies = {"Deep": f"{_FILLER} Here the tebentafusp arm lived longer. {_FILLER}",
              # the first word that starts like a match is not one (on PostgreSQL its window
              # has no match; the next window is tried)
              "Lookalike": f"The tebentafuspian era. {_FILLER} {_FILLER} Later tebentafusp won.",
              # a stem whose last letter is not its word's (study: studi)
              "Study": f"{_FILLER} A study found it.",
              # one of the words first, both of them later
              "Both": f"The chief said. {_FILLER} Then the chief executive resigned. {_FILLER}",
              # two words apart, the second in several forms before they come together
              "United": f"The state said. {_FILLER} It stated this. {_FILLER} A statement. "
                        f"{_FILLER} The United States agreed. {_FILLER} United States, united "
                        "states, the United States."}
    with session_scope(db_url) as s:
        for n, (title, body) in enumerate(bodies.items(), start=80):
            upsert_article(s, _article(n, title=title, body=body))
    snippets = {h.article.title: h.snippet for h in _search(db_url, "tebentafusp")[1].hits}
    snippets.update({h.article.title: h.snippet for h in _search(db_url, "study")[1].hits})
    for words in ('"chief executive"', "chief executive"):
        [both] = _search(db_url, words)[1].hits
        assert "chief executive resigned" in both.snippet.replace("\ue000", "").replace(
            "\ue001", ""), (words, both.snippet)
    snippets["Both"] = both.snippet
    [united] = _search(db_url, "united states")[1].hits
    assert "\ue000States\ue001" in united.snippet, united.snippet
    snippets["United"] = united.snippet
    assert snippets.keys() == bodies.keys()
    assert "\ue000tebentafusp\ue001 arm lived longer" in snippets["Deep"]
    assert "\ue000tebentafusp\ue001 won" in snippets["Lookalike"]
    assert "\ue000study\ue001 found it" in snippets["Study"]
    for title, snippet in snippets.items():
        first = snippet.replace("\ue000", "").replace("\ue001", "").lstrip("…").split()[0]
        assert bodies[title].startswith(first) or f" {first}" in bodies[title], snippet


def test_engines_beyond_the_limit_are_closed_not_left_to_the_collector(tmp_path):
    from db.session import MAX_ENGINES

    first = get_engine(f"sqlite:///{tmp_path}/0.db")
    with first.connect() as c:
        c.exec_driver_sql("SELECT 1")
    assert first.pool.checkedin() == 1  # kept open in its pool
    for i in range(1, MAX_ENGINES + 1):
        get_engine(f"sqlite:///{tmp_path}/{i}.db")
    assert first.pool.checkedin() == 0  # closed when it left the cache
    assert get_engine(f"sqlite:///{tmp_path}/0.db") is not first


def test_each_articles_tags_most_mentioned_first_then_by_name(db_url):
    from db.concepts import concepts_for_articles

    with session_scope(db_url) as s:
        _, first = upsert_article(s, _article(1, mentions={"melanoma": 1, "nivolumab": 3,
                                                           "breast-cancer": 1}))
        _, second = upsert_article(s, _article(2, mentions={"pembrolizumab": 2}))
        _, untagged = upsert_article(s, _article(3))
        ids = [first, second, untagged]
    with session_scope(db_url) as s:
        tags = concepts_for_articles(s, ids)
        assert {i: [t.slug for t in found] for i, found in tags.items()} == {
            first: ["nivolumab", "breast-cancer", "melanoma"],
            second: ["pembrolizumab"], untagged: []}
        nivolumab = tags[first][0]
        assert (nivolumab.label, nivolumab.name) == ("THERAPY", "nivolumab")
        assert concepts_for_articles(s, []) == {}


def test_a_search_matching_most_articles_finds_the_same_by_what_it_does_not_match(
        db_url, monkeypatch):
    """A search whose words match most of the newest articles asks the full-text index for
    the articles they do not match (db/search.py): the same results and facets, articles
    another writer stored without SQLite's every-article token included (PostgreSQL's vector
    holds its lexeme whoever writes the row). Under a concept, the same whether the words
    alone or the words under the concept are asked for what they do not match."""
    from db import search
    from db.search import Filters

    with session_scope(db_url) as s:
        for n in range(1, 9):
            upsert_article(s, _article(
                n, body="Relapse after therapy." if n % 4 else "Nothing in particular.",
                kind="news" if n % 2 else "paper",
                mentions={"melanoma": 1} if n < 5 else {"nivolumab": 1}))
    with session_scope(db_url) as s:  # a writer that knows nothing of tag_terms
        s.execute(sa.text(
            "INSERT INTO articles (id, canonical_url, url, title, summary, body, fetched_at, "
            "added_at, kind, extra, relevance, filtered) VALUES "
            "(100, 'w1', 'w1', 'Written elsewhere', '', 'A relapse too', '2026-10-01', "
            "'2026-10-01', 'news', '{}', 1.0, false), (101, 'w2', 'w2', 'Elsewhere, quiet', "
            "'', 'Nothing', '2026-10-01', '2026-10-01', 'news', '{}', 1.0, false)"))

    def run(share, slugs=(), **filters):
        """The search, asking for what does not match above SHARE of the newest articles."""
        monkeypatch.setattr(search, "COMPLEMENT_ABOVE", share)
        titles, page = _search(db_url, "relapse", slugs, sort="date", filters=Filters(**filters))
        return titles, page.total, {label: [(f.slug, f.count) for f in values]
                                    for label, values in page.facets.items()}

    for slugs, filters, total in (((), {}, 7), ((), {"kinds": ["paper"]}, 2),
                                  (("melanoma",), {"kinds": ["paper"]}, 1),
                                  (("melanoma",), {}, 3)):
        matches = run(2.0, slugs, **filters)  # never
        assert matches[1] == total
        for words_alone in (0.0, 2.0):  # under any concept / under none
            monkeypatch.setattr(search, "WORDS_ALONE_ABOVE", words_alone)
            assert run(0.0, slugs, **filters) == matches  # always
            assert run(0.5, slugs, **filters) == matches  # 7 of the newest 10 match
        # PostgreSQL asks among few candidates (2 here) unless they are over this share
        monkeypatch.setattr(search, "PG_AMONG_SHARE", 1.0)
        assert run(0.0, slugs, **filters) == matches
        monkeypatch.setattr(search, "PG_AMONG_SHARE", 0.0)
    titles, total, facets = run(0.0)
    assert "Written elsewhere" in titles and "Elsewhere, quiet" not in titles
    assert dict(facets["CANCER"])["melanoma"] == 3 and dict(facets["THERAPY"])["nivolumab"] == 3
