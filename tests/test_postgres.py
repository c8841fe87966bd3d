"""The same storage code on a real PostgreSQL server (full first-class support, with its own
search index, comes later; this proves migrations, the upsert and filters work there today)."""


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
