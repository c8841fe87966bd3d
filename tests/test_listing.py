"""The listing index (db/listing.py): searches, facets and concept pages read through it give
exactly what SQL alone gives, and it follows every kind of change other processes write."""

import random
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import delete, select, update

from db import listing, search
from db.articles import ArticleData, TagUpdate, update_tags, upsert_article
from db.concepts import (
    ConceptData,
    articles_per_month,
    co_occurring,
    concept_ids_by_slug,
    concepts_for_articles,
    count_visible_tagged,
    sync_concepts,
    therapy_cancer_map,
    with_descendants,
)
from db.fts_sqlite import EVERY_ARTICLE
from db.models import Article, ArticleConcept, Concept
from db.query import parse_query
from db.search import Filters, _sql_search, search_articles
from db.session import new_session, session_scope
from db.sources import get_or_create_source
from tests.conftest import new_db_url, sqlite_url

WORDS = ("response survival relapse remission toxicity biopsy infusion cohort endpoint "
         "placebo hazard progression").split()
TAGS = ("pembrolizumab", "nivolumab", "melanoma", "non-small-cell-lung-cancer",
        "multiple-myeloma", "car-t-cell-therapy", "pd-l1", "bcma", "breast-cancer",
        "triple-negative-breast-cancer")
FILTER_SLUGS = (*TAGS, "pd-1-inhibitor", "immunotherapy", "lung-cancer", "cancer",
                "haematological-malignancy")
SOURCES = ("Oncology Wire", "PubMed", "Europe PMC", "ClinicalTrials.gov")
KINDS = ("news", "paper", "preprint", "trial")
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def _db(tmp_path) -> str:
    from webapp.cli import prepare_database

    url = new_db_url(tmp_path)
    prepare_database(url)
    return url


def _article(rng: random.Random, i: int) -> ArticleData:
    words = rng.choices(WORDS, k=rng.randint(3, 12))
    published = None if rng.random() < 0.15 else NOW - timedelta(days=rng.randint(0, 1200),
                                                                 minutes=rng.randint(0, 60))
    return ArticleData(
        canonical_url=f"https://news.example/{i}", url=f"https://news.example/{i}",
        title=" ".join(rng.choices(WORDS, k=4)), body=" ".join(words),
        summary=" ".join(rng.choices(WORDS, k=3)), kind=rng.choice(KINDS),
        source_name=rng.choice(SOURCES), published_at=published,
        mentions={slug: 1 for slug in rng.sample(TAGS, rng.randint(0, 3))})


def _fill(url: str, count: int, seed: int = 3) -> None:
    rng = random.Random(seed)
    with session_scope(url) as s:
        for name in SOURCES:
            get_or_create_source(s, name, "feed", "http://127.0.0.1/" + name.replace(" ", ""))
        for i in range(count):
            upsert_article(s, _article(rng, i))
        ids = list(s.scalars(select(Article.id)))
        for article_id in rng.sample(ids, count // 10):  # off-topic, kept but not listed
            s.execute(update(Article).where(Article.id == article_id).values(filtered=True))
        for article_id in rng.sample(ids, count // 10):  # later sources of a story
            s.execute(update(Article).where(Article.id == article_id)
                      .values(story_id=rng.choice(ids)))


def _random_search(rng: random.Random) -> dict:
    words = []
    for _ in range(rng.choice((0, 0, 1, 1, 2))):
        word = rng.choice(WORDS)
        words.append(rng.choice((word, word[:4] + "*", f"{word} OR {rng.choice(WORDS)}")))
    if words and rng.random() < 0.3:
        words.append("-" + rng.choice(WORDS))
    filters = Filters(
        kinds=rng.sample(KINDS, rng.randint(1, 2)) if rng.random() < 0.3 else [],
        sources=rng.sample(SOURCES, 1) if rng.random() < 0.2 else [],
        since=date(2025, rng.randint(1, 12), 1) if rng.random() < 0.2 else None,
        until=date(2026, rng.randint(1, 12), 28) if rng.random() < 0.2 else None)
    return {"q": " ".join(words),
            "slugs": rng.sample(FILTER_SLUGS, rng.choice((0, 0, 1, 2))),
            "sort": rng.choice(("relevance", "date")), "page": rng.choice((1, 1, 2, 3)),
            "filters": filters}


def _both(session, q: str, slugs: list[str], sort: str = "relevance", page: int = 1,
          filters: Filters | None = None, per_page: int = 7):
    """The same search through the listing index and through SQL alone."""
    query = parse_query(q)
    indexed = search_articles(session, query, slugs, page=page, per_page=per_page, sort=sort,
                              filters=filters)
    by_rank = bool(query.groups) and sort != "date"
    in_sql = _sql_search(session, query, slugs, page, per_page, by_rank, 12, filters)
    return indexed, in_sql


def _same(indexed, in_sql) -> None:
    assert indexed.total == in_sql.total
    assert [h.article.id for h in indexed.hits] == [h.article.id for h in in_sql.hits]
    assert [h.snippet for h in indexed.hits] == [h.snippet for h in in_sql.hits]
    assert indexed.facets == in_sql.facets


def _concept_views_match(session) -> None:
    """Concept pages and the map read through the index give what SQL gives."""
    for slug in FILTER_SLUGS:
        ids = with_descendants(session, slug)
        index = listing.listing_for(session)
        assert index is not None
        indexed = (count_visible_tagged(session, ids), articles_per_month(session, ids, 40),
                   co_occurring(session, ids))
        listing._listings.clear()  # noqa: SLF001 - the same calls without an index
        original = listing.listing_for
        listing.listing_for = lambda _session: None
        try:
            in_sql = (count_visible_tagged(session, ids), articles_per_month(session, ids, 40),
                      co_occurring(session, ids))
            map_in_sql = therapy_cancer_map(session)
        finally:
            listing.listing_for = original
        assert indexed[0] == in_sql[0] and indexed[1] == in_sql[1]
        assert ({label: [(c.slug, n) for c, n in values] for label, values in indexed[2].items()}
                == {label: [(c.slug, n) for c, n in values] for label, values in in_sql[2].items()})
    found = therapy_cancer_map(session)
    assert [c.slug for c in found.therapies] == [c.slug for c in map_in_sql.therapies]
    assert [c.slug for c in found.cancers] == [c.slug for c in map_in_sql.cancers]
    assert found.counts == map_in_sql.counts and found.counts


def test_searches_through_the_index_equal_sql_alone(tmp_path):
    url = _db(tmp_path)
    _fill(url, 240)
    rng = random.Random(11)
    session = new_session(url)
    try:
        assert listing.listing_for(session) is not None
        compared = 0
        for _ in range(300):
            case = _random_search(rng)
            indexed, in_sql = _both(session, case["q"], case["slugs"], case["sort"],
                                    case["page"], case["filters"])
            _same(indexed, in_sql)
            compared += bool(indexed.hits)
        assert compared > 100  # most cases found something to compare
        _concept_views_match(session)
    finally:
        session.close()


def test_the_index_follows_what_other_processes_write(tmp_path):
    url = _db(tmp_path)
    _fill(url, 60)
    reader = new_session(url)

    def check() -> None:
        reader.rollback()  # a new request: a new read transaction
        for q, slugs, sort in (("", [], "date"), ("remission OR relapse", [], "relevance"),
                               ("", ["immunotherapy"], "date"), ("", ["cancer"], "date"),
                               ("surv*", ["melanoma"], "relevance")):
            _same(*_both(reader, q, slugs, sort, per_page=100))
        _concept_views_match(reader)

    try:
        check()
        rng = random.Random(5)
        with session_scope(url) as s:  # new articles
            for i in range(100, 110):
                upsert_article(s, _article(rng, i))
        check()
        with session_scope(url) as s:  # a re-crawl changes an article's kind and tags
            changed = _article(rng, 3)
            changed.kind, changed.mentions = "trial", {"bcma": 2, "multiple-myeloma": 1}
            assert upsert_article(s, changed)[0] == "updated"
        check()
        first = reader.scalar(select(Article).order_by(Article.id).limit(1))
        with session_scope(url) as s:  # re-tagged
            article = s.get(Article, first.id)
            update_tags(s, article, TagUpdate(summary="relapse", mentions={"pd-l1": 1},
                                              relevance=0.9, filtered=False, language="en",
                                              labels={}, cites=None),
                        concept_ids_by_slug(s, ["pd-l1"]))
        check()
        with session_scope(url) as s:  # grouped into a story, filtered out, deleted, dated
            ids = list(s.scalars(select(Article.id).order_by(Article.id)))
            s.execute(update(Article).where(Article.id == ids[1]).values(story_id=ids[2]))
            s.execute(update(Article).where(Article.id == ids[4]).values(filtered=True))
            s.execute(update(Article).where(Article.id == ids[5]).values(story_id=None,
                                                                        filtered=False))
            s.execute(update(Article).where(Article.id == ids[6])
                      .values(published_at=NOW + timedelta(days=1)))
            s.execute(delete(Article).where(Article.id == ids[7]))
        check()
        with session_scope(url) as s:  # the hierarchy moves: every tag's ancestors change
            melanoma = s.scalar(select(Concept).where(Concept.slug == "melanoma"))
            sync_concepts(s, [ConceptData("melanoma", "CANCER", melanoma.name,
                                          parent="haematological-malignancy")])
        check()
    finally:
        reader.close()


def test_a_log_pruned_past_the_index_rebuilds_it(tmp_path):
    url = _db(tmp_path)
    _fill(url, 30)
    reader = new_session(url)
    try:
        _same(*_both(reader, "", ["cancer"], "date", per_page=100))
        before = listing._listings[url].columns  # noqa: SLF001
        rng = random.Random(8)
        postgres = reader.get_bind().dialect.name == "postgresql"
        with session_scope(url) as s:
            for i in range(200, 240):
                upsert_article(s, _article(rng, i))
        with session_scope(url) as s:  # the reader never saw most of these changes
            if postgres:  # PostgreSQL keeps a day's changes; the reader looked long ago
                s.connection().exec_driver_sql(
                    "UPDATE article_changes SET at = now() - interval '2 days' "
                    "WHERE seq < (SELECT max(seq) - 2 FROM article_changes)")
                listing._listings[url].checked -= listing.STALE_AFTER_SECONDS  # noqa: SLF001
            listing.prune_changes(s, keep=3)
        reader.rollback()
        _same(*_both(reader, "", ["cancer"], "date", per_page=100))
        _same(*_both(reader, "relapse", [], "relevance", per_page=100))
        after = listing._listings[url].columns  # noqa: SLF001
        assert after is not before and len(after) == len(before) + 40
        with session_scope(url) as s:
            assert s.scalar(select(Article.id).limit(1)) is not None
            kept = s.connection().exec_driver_sql("SELECT count(*) FROM article_changes").scalar()
        assert kept == 3
    finally:
        reader.close()


def test_a_large_backlog_is_read_anew_and_a_small_one_merged(tmp_path, monkeypatch):
    """Past a quarter of the articles changed, the index is built again rather than merged;
    either way it gives what SQL gives."""
    url = _db(tmp_path)
    _fill(url, 40)
    monkeypatch.setattr(listing, "REBUILD_AT_LEAST", 5)
    builds = []
    real_build = listing._build  # noqa: SLF001
    monkeypatch.setattr(listing, "_build", lambda fresh: builds.append(1) or real_build(fresh))
    reader = new_session(url)
    rng = random.Random(11)
    try:
        _same(*_both(reader, "", ["cancer"], "date", per_page=100))
        assert len(builds) == 1  # the first look builds it
        for changed, rebuilt in ((3, False), (15, True)):  # 3 of 40 merged; 15 of 40 rebuilt
            with session_scope(url) as s:
                for article_id in s.scalars(select(Article.id).order_by(Article.id)
                                            .limit(changed)):
                    s.execute(update(Article).where(Article.id == article_id).values(
                        title=" ".join(rng.choices(WORDS, k=3)),
                        published_at=NOW - timedelta(days=rng.randint(0, 900))))
            reader.rollback()
            before = len(builds)
            _same(*_both(reader, "", ["cancer"], "date", per_page=100))
            _same(*_both(reader, "relapse", ["melanoma"], "relevance", per_page=100))
            assert len(builds) == before + rebuilt, (changed, rebuilt)
    finally:
        reader.close()


def test_a_broad_search_ranks_its_newest_matches_and_counts_them_all(tmp_path, monkeypatch):
    url = _db(tmp_path)
    _fill(url, 80)
    monkeypatch.setattr(search, "RANKED_MATCHES", 10)
    session = new_session(url)
    try:
        everything = search_articles(session, parse_query("response OR survival OR relapse"),
                                     per_page=100, sort="date", facet_limit=0)
        assert everything.total > 30
        newest = [h.article.id for h in everything.hits]
        pages = [search_articles(session, parse_query("response OR survival OR relapse"),
                                 page=p, per_page=4) for p in (1, 2, 3, 4)]
        assert {p.total for p in pages} == {everything.total}
        shown = [h.article.id for p in pages for h in p.hits]
        # the first 10 are the 10 newest matches, best first; then the rest, newest first
        assert sorted(shown[:10]) == sorted(newest[:10]) and shown[10:] == newest[10:16]
        ranked = dict(session.connection().exec_driver_sql(
            "SELECT id, -ts_rank_cd(search_vector, to_tsquery('english', "
            "'response | survival | relapse')) FROM articles"
            if session.get_bind().dialect.name == "postgresql" else
            "SELECT rowid, bm25(article_fts, 10.0, 4.0, 1.0) FROM article_fts "
            "WHERE article_fts MATCH '\"response\" OR \"survival\" OR \"relapse\"'").all())
        assert [ranked[i] for i in shown[:10]] == sorted(ranked[i] for i in newest[:10])
        assert pages[0].facets == search_articles(
            session, parse_query("response OR survival OR relapse"), sort="date").facets
    finally:
        session.close()


def test_in_memory_and_unmigrated_databases_are_served_by_sql(tmp_path):
    from db.models import Base

    with session_scope(sqlite_url(tmp_path / "bare.db")) as s:
        Base.metadata.create_all(s.get_bind())
        assert listing.listing_for(s) is None
        assert search_articles(s, parse_query(""), ["melanoma"]).total == 0
    with session_scope("sqlite://") as s:
        Base.metadata.create_all(s.get_bind())
        assert listing.listing_for(s) is None


@pytest.mark.parametrize("moment", [datetime(2026, 1, 2, 3, 4, 5, 6789, tzinfo=UTC),
                                    datetime(1999, 12, 31, 23, 59, 59)])
def test_dates_are_kept_to_the_microsecond(moment):
    text = moment.replace(tzinfo=None).isoformat(sep=" ")
    assert listing._as_micros([text])[0] == listing.micros(moment)  # noqa: SLF001
    assert listing._as_micros([None])[0] == 0  # noqa: SLF001


def _tag_terms(url: str, article_id: int) -> set[str]:
    """The article's concept tokens, checking the token every article holds is still there."""
    with session_scope(url) as s:
        terms = s.scalar(select(Article.tag_terms).where(Article.id == article_id)).split()
    assert terms[0] == EVERY_ARTICLE and terms.count(EVERY_ARTICLE) == 1
    return set(terms[1:])


def test_concept_tokens_follow_the_tags_whoever_writes_them(tmp_path):
    url = _db(tmp_path)
    with session_scope(url) as s:
        ids = concept_ids_by_slug(s, ["melanoma", "nivolumab", "pd-l1"])
        _, article_id = upsert_article(s, ArticleData(
            canonical_url="https://news.example/t", url="https://news.example/t",
            title="Relapse after therapy", body="relapse", mentions={"melanoma": 1}))
    assert _tag_terms(url, article_id) == {f"c{ids['melanoma']}"}

    def found(slug: str) -> list[int]:
        with session_scope(url) as s:
            indexed, in_sql = _both(s, "relapse", [slug])
            _same(indexed, in_sql)
            return [h.article.id for h in indexed.hits]

    assert found("nivolumab") == []
    with session_scope(url) as s:  # a writer that knows nothing of tag_terms
        s.connection().exec_driver_sql(
            f"INSERT INTO article_concepts (article_id, concept_id, mentions) "
            f"VALUES ({article_id}, {ids['nivolumab']}, 1)")
    assert _tag_terms(url, article_id) == {f"c{ids['melanoma']}", f"c{ids['nivolumab']}"}
    assert found("nivolumab") == [article_id] and found("pd-1-inhibitor") == [article_id]
    with session_scope(url) as s:
        s.connection().exec_driver_sql(
            f"UPDATE article_concepts SET concept_id = {ids['pd-l1']} "
            f"WHERE article_id = {article_id} AND concept_id = {ids['nivolumab']}")
    assert _tag_terms(url, article_id) == {f"c{ids['melanoma']}", f"c{ids['pd-l1']}"}
    assert found("nivolumab") == [] and found("pd-l1") == [article_id]
    with session_scope(url) as s:
        s.connection().exec_driver_sql(
            f"DELETE FROM article_concepts WHERE article_id = {article_id} "
            f"AND concept_id = {ids['melanoma']}")
    assert _tag_terms(url, article_id) == {f"c{ids['pd-l1']}"}
    assert found("melanoma") == []
    with session_scope(url) as s:  # the application's own writes: only what changes
        upsert_article(s, ArticleData(
            canonical_url="https://news.example/t", url="https://news.example/t",
            title="Relapse after therapy", body="relapse again",
            mentions={"melanoma": 2, "pd-l1": 3}))
    assert _tag_terms(url, article_id) == {f"c{ids['melanoma']}", f"c{ids['pd-l1']}"}
    assert found("melanoma") == [article_id] and found("pd-l1") == [article_id]


def test_the_tags_of_few_articles_are_those_a_pass_over_every_tag_finds(tmp_path, monkeypatch):
    """concepts_in finds a few articles' tags by binary search in the tags sorted by article,
    and many articles' by one pass over every tag: the same concepts either way, also once a
    merge has appended re-tagged articles' tags after the others. newest_first likewise sorts
    a few articles by their place in the date order, or filters the whole order for many."""
    url = _db(tmp_path)
    _fill(url, 120)
    reader = new_session(url)
    rng = random.Random(5)

    def compare() -> None:
        columns, _ = listing.listing_for(reader)
        for pos in (columns.tag_pos, columns.up_pos):
            assert (pos[1:] >= pos[:-1]).all()
        for fraction in (0.0, 0.02, 0.1, 0.5, 1.0):
            mask = np.array([rng.random() < fraction for _ in range(len(columns))])
            for pos, concepts, ancestors in ((columns.up_pos, columns.up_concepts, True),
                                             (columns.tag_pos, columns.tag_concepts, False)):
                wanted = sorted(int(c) for p, c in zip(pos, concepts, strict=True) if mask[p])
                for factor in (0, 10**9):  # each article's own tags / every tag in one pass
                    monkeypatch.setattr(listing, "FEW_ARTICLES_FACTOR", factor)
                    assert sorted(listing.concepts_in(columns, mask, ancestors)) == wanted
            newest = [p for p in columns.by_date if mask[p]]
            for factor in (0, 10**9):  # the few sorted / the whole order filtered
                monkeypatch.setattr(listing, "FEW_ARTICLES_FACTOR", factor)
                assert listing.newest_first(columns, mask).tolist() == newest
                for limit in (0, 1, 3, 40, 10**6):  # the newest LIMIT at least, in order
                    for slack in (0, 1024):  # read on past the estimate / read far enough
                        monkeypatch.setattr(listing, "ORDER_SLACK", slack)
                        head = listing.newest_first(columns, mask, limit).tolist()
                        assert head == newest[:len(head)]
                        assert len(head) >= min(limit, len(newest))
        # a concept set's articles, by a pass over every tag and through the tags sorted by
        # concept (sets of one, several, none, and ids no article is tagged with)
        tagged = sorted({int(c) for c in columns.tag_concepts})
        for size in (0, 1, 1, 2, 3, 8, len(tagged)):
            wanted = set(rng.sample(tagged, min(size, len(tagged))))
            if size == 2:
                wanted.add(10**6)
            expected = np.zeros(len(columns), dtype=bool)
            expected[[p for p, c in zip(columns.tag_pos, columns.tag_concepts, strict=True)
                      if int(c) in wanted]] = True
            for sort_after, sorted_before in ((10**9, False), (0, True)):
                monkeypatch.setattr(listing, "SORT_AFTER", sort_after)
                columns.masks.clear()
                columns.by_concept.clear()
                assert (listing.concept_mask(columns, wanted) == expected).all()
                assert bool(columns.by_concept) == sorted_before

    try:
        compare()
        with session_scope(url) as s:  # re-tag the oldest articles: their tags go last
            for article in s.scalars(select(Article).order_by(Article.id).limit(5)):
                update_tags(s, article, TagUpdate(summary="relapse",
                                                  mentions={"bcma": 1, "melanoma": 1},
                                                  relevance=0.9, filtered=False, language="en",
                                                  labels={}, cites=None),
                            concept_ids_by_slug(s, ["bcma", "melanoma"]))
        reader.rollback()
        compare()
        _same(*_both(reader, "relapse", ["bcma"], "relevance", per_page=100))
        _concept_views_match(reader)
    finally:
        reader.close()


def test_tags_read_from_the_index_are_those_the_database_lists(tmp_path, monkeypatch):
    """An article's tags from the listing index: the same tags in the same order (most
    mentioned first, then by name) as the query gives, as written, after a change of mentions
    has been merged in, and for ids the index does not hold."""
    from db.models import ArticleConcept

    url = _db(tmp_path)
    _fill(url, 90)
    reader = new_session(url)
    rng = random.Random(4)

    def compare() -> None:
        ids = [*reader.scalars(select(Article.id)), 10**9]
        from_index = concepts_for_articles(reader, ids)
        assert listing.listing_for(reader) is not None
        with monkeypatch.context() as patched:
            patched.setattr(listing, "listing_for", lambda session: None)
            assert concepts_for_articles(reader, ids) == from_index
        assert from_index[10**9] == [] and sum(map(len, from_index.values())) > 50
        reader.rollback()

    try:
        compare()
        with session_scope(url) as s:  # mentions that differ, some equal: names break ties
            for article_id, concept_id in s.execute(
                    select(ArticleConcept.article_id, ArticleConcept.concept_id)).all():
                s.execute(update(ArticleConcept).where(
                    ArticleConcept.article_id == article_id,
                    ArticleConcept.concept_id == concept_id).values(mentions=rng.randint(1, 3)))
        compare()
    finally:
        reader.close()


def test_facets_of_most_articles_counted_from_the_few_outside_are_the_same(tmp_path):
    """A search matching most listed articles counts its facets as every listed article's
    counts less those of the listed ones it does not match: the same numbers as counting
    its matches one by one, whatever the share matched."""
    url = _db(tmp_path)
    _fill(url, 90)
    session = new_session(url)
    try:
        columns, concepts = listing.listing_for(session)
        size = max(concepts.size, columns.concept_bound)
        rng = np.random.default_rng(5)
        for share in (0.0, 0.2, 0.6, 0.9, 0.99, 1.0):
            for _ in range(4):
                drawn = rng.random(len(columns)) < share
                for mask in (columns.listed & drawn, drawn):  # within the listed ones, or not
                    found = listing.tally(columns, mask, concepts.size)
                    direct = listing._count(columns, mask, size)  # noqa: SLF001
                    for name in ("concepts", "kinds", "sources", "years"):
                        assert getattr(found, name).tolist() == getattr(direct, name).tolist()
        assert columns.listed_tally  # the listed articles' counts were taken, and used
    finally:
        session.close()


def _columns(ids: list[int]) -> listing.Columns:
    n = len(ids)
    zeros = np.zeros(n, dtype=np.int64)
    return listing.Columns(
        ids=np.array(ids, dtype=np.int64), kind=np.zeros(n, dtype=np.int8), source=zeros - 1,
        date=zeros, published=zeros, added=zeros, listed=np.ones(n, dtype=bool),
        visible=np.ones(n, dtype=bool), whole=np.ones(n, dtype=bool),
        tag_pos=np.zeros(0, dtype=np.int32), tag_concepts=np.zeros(0, dtype=np.int32),
        up_pos=np.zeros(0, dtype=np.int32), up_concepts=np.zeros(0, dtype=np.int32),
        tag_mentions=np.zeros(0, dtype=np.int32))


@given(st.sets(st.integers(1, 3000), max_size=200) | st.sets(st.integers(1, 2**40), max_size=50),
       st.lists(st.integers(0, 3100), max_size=300),
       st.lists(st.integers(-2**41, 2**41), max_size=3))
def test_members_are_the_indexed_ids_among_those_asked_for(held, asked, far):
    """Whether by the table of positions (dense ids) or by binary search (sparse ones, or ids
    outside the table)."""
    columns = _columns(sorted(held))
    for ids in (asked, asked + far):
        found = listing.members(columns, np.array(ids, dtype=np.int64))
        assert found.shape == (len(held),)
        assert columns.ids[found].tolist() == sorted(held & set(ids))
        if held:  # each id's position, and whether the index holds it
            pos, found_each = listing._searched(columns, np.array(ids, dtype=np.int64))  # noqa: SLF001
            assert found_each.tolist() == [i in held for i in ids]
            assert columns.ids[pos[found_each]].tolist() == [i for i in ids if i in held]
            assert ((pos >= 0) & (pos < len(held))).all()


def test_what_a_common_words_search_does_not_match_is_kept_and_follows_changes(tmp_path,
                                                                               monkeypatch):
    """The articles a search's words do not match, once asked for, are kept with the state of
    the index; a later state asks only about the articles changed in between (new, re-crawled,
    deleted), and asks again about all once more than UNMATCHED_CHANGED_SHARE changed. The
    searches equal SQL's throughout."""
    url = _db(tmp_path)
    _fill(url, 60)
    monkeypatch.setattr(search, "COMPLEMENT_ABOVE", 0.0)  # every search asks for what it lacks
    monkeypatch.setattr(listing, "UNMATCHED_KEPT_SHARE", 10.0)  # a few articles, many lacking
    asked: list[list[int] | None] = []
    kept = listing.unmatched

    def unmatched(columns, key, find):
        def recorded(among):
            asked.append(None if among is None else sorted(among.tolist()))
            return find(among)
        return kept(columns, key, recorded)

    monkeypatch.setattr(listing, "unmatched", unmatched)
    reader = new_session(url)
    searches = ("remission", "relapse OR survival", "surv* -toxicity")

    def check() -> list[list[int] | None]:
        reader.rollback()  # a new request: a new read transaction
        del asked[:]
        for q in searches:  # newest first: few enough matches to rank would be ranked alone
            _same(*_both(reader, q, [], "date", per_page=100))
            _same(*_both(reader, q, [], "date", filters=Filters(kinds=["news"])))
        return asked[:]

    def ids() -> list[int]:
        reader.rollback()
        return list(reader.scalars(select(Article.id).order_by(Article.id)))

    try:
        assert check() == [None] * len(searches)  # asked once each, then kept
        assert check() == []
        rng = random.Random(8)
        before = ids()
        with session_scope(url) as s:  # one new, one re-crawled without the words, one gone
            upsert_article(s, _article(rng, 200))
            rewritten = _article(rng, 4)
            rewritten.body = rewritten.title = rewritten.summary = "nothing of note"
            assert upsert_article(s, rewritten)[0] == "updated"
            s.execute(delete(Article).where(Article.id == before[10]))
        changed = sorted({*(set(ids()) - set(before)), before[10],
                          reader.scalar(select(Article.id).where(
                              Article.canonical_url == "https://news.example/4"))})
        assert check() == [changed] * len(searches)
        assert check() == []
        with session_scope(url) as s:  # more than UNMATCHED_CHANGED_SHARE of them
            for i in range(300, 305):
                upsert_article(s, _article(rng, i))
        assert check() == [None] * len(searches)
    finally:
        reader.close()


def test_kept_unmatched_articles_are_bounded_by_count_and_by_size(monkeypatch):
    columns = _columns(list(range(1, 101)))
    monkeypatch.setattr(listing, "UNMATCHED_KEPT", 3)
    for n in range(5):
        listing.unmatched(columns, f"search {n}", lambda _among: np.arange(1, 6))
    assert list(columns.unmatched_kept) == ["search 2", "search 3", "search 4"]
    listing.unmatched(columns, "search 2", lambda _among: pytest.fail("asked again"))
    assert list(columns.unmatched_kept) == ["search 3", "search 4", "search 2"]
    listing.unmatched(columns, "large", lambda _among: np.arange(1, 97))  # 96 of 100 articles
    assert list(columns.unmatched_kept) == ["large"]


def test_ranking_ids_that_fill_their_range_gives_those_ids_only(tmp_path, monkeypatch):
    """Ids that fill most of the range between the first and last (a broad search's newest
    matches) are ranked by that range on PostgreSQL: the articles in between not asked for are
    left out, and the ranks are those of asking for each id (on SQLite, the same contract)."""
    url = _db(tmp_path)
    _fill(url, 60)
    session = new_session(url)
    try:
        query = parse_query("response OR survival OR relapse")
        every = np.array(sorted(session.scalars(select(Article.id))), dtype=np.int64)
        asked = np.delete(every, [5, 6, 30])  # 57 of the 60 between the first and last
        matching = set(search._ranks(session, query, every, [], len(every))[0].tolist())
        assert len(matching) > 30
        found, ranks = search._ranks(session, query, asked, [], len(every))
        assert sorted(found.tolist()) == sorted(matching - set(every[[5, 6, 30]].tolist()))
        monkeypatch.setattr(search, "PG_RANGE_ABOVE", 2.0)  # never by range: id by id
        one_by_one, their_ranks = search._ranks(session, query, asked, [], len(every))
        assert dict(zip(found.tolist(), ranks.tolist(), strict=True)) == dict(
            zip(one_by_one.tolist(), their_ranks.tolist(), strict=True))
    finally:
        session.close()


def test_ranking_ids_under_concepts_gives_those_ids_only(tmp_path, monkeypatch):
    """Ids to rank under concepts, most of the articles tagged so, are found on PostgreSQL
    through the concepts' lexemes in the GIN index (migration 0011): the tagged articles not
    asked for (left out by another filter) are left out, and the ranks are those of asking
    for each id (on SQLite, the same contract)."""
    url = _db(tmp_path)
    _fill(url, 80)
    monkeypatch.setattr(search, "PG_RANGE_ABOVE", 2.0)  # never by range
    session = new_session(url)
    try:
        query = parse_query("response OR survival OR relapse")
        concepts = [with_descendants(session, "lung-cancer"), with_descendants(session, "cancer")]
        tagged = np.array(sorted(set.intersection(*(set(session.scalars(
            select(ArticleConcept.article_id).where(ArticleConcept.concept_id.in_(ids))))
            for ids in concepts))), dtype=np.int64)
        assert len(tagged) > 8
        asked = np.delete(tagged, [1, 4])  # as a filter on kind or source might leave them out
        every = len(session.scalars(select(Article.id)).all())
        matching = set(search._ranks(session, query, tagged, concepts, every)[0].tolist())
        through_lexemes = []
        original = search._pg_concepts_tsquery
        monkeypatch.setattr(search, "_pg_concepts_tsquery",
                            lambda sets: through_lexemes.append(sets) or original(sets))
        found, ranks = search._ranks(session, query, asked, concepts, every, len(tagged))
        assert sorted(found.tolist()) == sorted(matching - set(tagged[[1, 4]].tolist()))
        assert len(through_lexemes) == (session.get_bind().dialect.name == "postgresql")
        one_by_one, their_ranks = search._ranks(session, query, asked, concepts, every)
        assert dict(zip(found.tolist(), ranks.tolist(), strict=True)) == dict(
            zip(one_by_one.tolist(), their_ranks.tolist(), strict=True))
    finally:
        session.close()
