"""The Europe PMC spider against a local server serving search pages
(tests/fixtures/europepmc, see SOURCE.md)."""


import sqlalchemy as sa

from crawler.sources import SourceConfig, write_sources
from db.session import get_engine
from tests.conftest import FAST, FIXTURES, new_db_url, run_cli, stored_json

PAGES = FIXTURES / "europepmc"
LAST_CURSOR = "AoIIP4AAACg5NjY0MTQ3MA=="


def test_papers_and_preprints_one_work_each(sample_site, tmp_path):
    def search(query):
        name = "search-page2.json" if query["cursorMark"] == [LAST_CURSOR] else \
            "search-page1.json"
        return 200, "application/json", (PAGES / name).read_bytes()

    sample_site.routes["/epmc/search"] = search
    sample_site.requests.clear()
    sources = tmp_path / "s.toml"
    write_sources(sources, [SourceConfig("Europe PMC", "europepmc", f"{sample_site.url}/epmc/",
                                         options={"query": "immunotherapy",
                                                  "preprints_only": False})])
    url = new_db_url(tmp_path, "e.db")
    result = run_cli("crawl", "--sources", str(sources), *FAST, db_url=url)
    assert result.returncode == 0, result.stderr
    calls = [q for _, path, q in sample_site.requests if path == "/epmc/search"]
    assert [c["cursorMark"] for c in calls] == [["*"], [LAST_CURSOR]]  # stops when it repeats
    assert calls[0]["resultType"] == ["core"] and calls[0]["format"] == ["json"]

    with get_engine(url).connect() as c:
        rows = {r.title: r for r in c.execute(sa.text(
            "SELECT title, kind, doi, pmid, pmcid, extra FROM articles"))}
    assert len(rows) == 3  # four records, the preprint and its journal article are one work
    lone = rows["Neoantigen-selected tumour-infiltrating lymphocytes in HER2-negative breast "
                "cancer: a single-arm pilot"]
    assert lone.kind == "preprint" and lone.doi == "10.1101/2026.09.01.600001"
    assert stored_json(lone.extra)["preprint"]["server"] == "bioRxiv"
    work = next(r for r in rows.values() if r.pmid == "39000001")
    extra = stored_json(work.extra)
    assert work.kind == "paper" and work.pmcid == "PMC9900001"
    assert work.doi == "10.1000/ifeed.2026.001"
    assert extra["preprint"]["doi"] == "10.1101/2026.05.12.590002"
    assert any("PPR900002" in link for link in extra["links"])
    assert any(link.endswith("/MED/39000001") for link in extra["links"])
