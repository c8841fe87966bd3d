"""Near-duplicate stories across sources are grouped into one entry with all its sources."""

import re

import sqlalchemy as sa

from crawler.dedupe import shingles, signature
from db.session import get_engine
from db.stories import band_keys, similarity


def test_signatures_estimate_similarity():
    text = ("Tarlatamab improved overall survival compared with standard chemotherapy in "
            "patients with small cell lung cancer that had progressed after platinum.")
    same = signature("A", text)
    edited = signature("B", text.replace("standard", "usual"))
    other = signature("C", "Glofitamab with gemcitabine and oxaliplatin in DLBCL after relapse.")
    assert similarity(same, signature("A", text)) == 1.0
    assert 0.3 < similarity(same, edited) < 1.0
    assert similarity(same, other) < 0.1
    assert len(band_keys(same)) == 32
    assert shingles("one two") == {b"one two"}


def test_republished_stories_are_one_entry(crawled_db, client):
    with get_engine(crawled_db).connect() as c:
        rows = c.execute(sa.text(
            "SELECT a.title, lead.title FROM articles a JOIN articles lead "
            "ON lead.id = a.story_id ORDER BY a.id")).all()
    assert sorted(rows) == [
        ("DLL3 bispecific tarlatamab outperforms chemotherapy in relapsed SCLC",
         "Tarlatamab beats chemotherapy in relapsed small cell lung cancer"),
        ("Subcutaneous atezolizumab cleared for every intravenous indication",
         "Regulators approve subcutaneous atezolizumab across all intravenous indications"),
    ]
    html = client.get("/search?q=tarlatamab").get_data(as_text=True)
    titles = re.findall(r'<li class="result">\s*<h2><a href="[^"]+">(.*?)</a>', html)
    assert titles == ["Tarlatamab beats chemotherapy in relapsed small cell lung cancer"]
    assert "Also reported by:" in html and "Oncology Wire partners" in html


def test_no_unrelated_stories_are_grouped(crawled_db):
    with get_engine(crawled_db).connect() as c:
        grouped = c.execute(sa.text("SELECT count(*) FROM articles WHERE story_id IS NOT NULL"))
        assert grouped.scalar() == 2


def test_the_earliest_published_copy_leads_whatever_the_order(db_url):
    from datetime import UTC, datetime

    from db.articles import ArticleData, upsert_article
    from db.models import Article
    from db.session import session_scope
    from db.stories import assign_story

    body = "Pembrolizumab with chemoradiotherapy lowered the risk of death in cervical cancer " * 5
    copies = [("Late copy", datetime(2026, 10, 3, tzinfo=UTC)),
              ("Original", datetime(2026, 10, 1, tzinfo=UTC)),
              ("Middle copy", datetime(2026, 10, 2, tzinfo=UTC))]
    with session_scope(db_url) as s:
        for n, (title, published) in enumerate(copies):
            _, article_id = upsert_article(s, ArticleData(
                canonical_url=f"https://site{n}.example/a", url=f"https://site{n}.example/a",
                title=title, body=body, published_at=published))
            assign_story(s, s.get(Article, article_id), signature("", body))
    with session_scope(db_url) as s:
        leads = {a.title: a.story_id for a in s.query(Article)}
        original = next(a.id for a in s.query(Article) if a.title == "Original")
    assert leads == {"Original": None, "Late copy": original, "Middle copy": original}


def test_article_pages_name_the_other_tellings_of_their_story(crawled_db, client):
    with get_engine(crawled_db).connect() as c:
        copy_id, lead_id = c.execute(sa.text(
            "SELECT id, story_id FROM articles WHERE title LIKE 'DLL3 bispecific tarlatamab%'"
        )).one()
    copy_page = client.get(f"/articles/{copy_id}").get_data(as_text=True)
    lead_page = client.get(f"/articles/{lead_id}").get_data(as_text=True)
    assert "Also reported by:" in copy_page and f'href="/articles/{lead_id}"' in copy_page
    assert "Also reported by:" in lead_page and f'href="/articles/{copy_id}"' in lead_page
