"""The ClinicalTrials.gov spider against a local server serving API v2 pages
(tests/fixtures/clinicaltrials, see SOURCE.md)."""

import json

import sqlalchemy as sa

from crawler.sources import SourceConfig, write_sources
from db.session import get_engine
from tests.conftest import FAST, FIXTURES, new_db_url, run_cli, stored_json

PAGES = FIXTURES / "clinicaltrials"


def _serve(site, statuses=None):
    """Page 1, then page 2 for pageToken=page-2-token; STATUSES overrides overall statuses."""
    def studies(query):
        name = "studies-page2.json" if query.get("pageToken") == ["page-2-token"] else \
            "studies-page1.json"
        page = json.loads((PAGES / name).read_text())
        for study in page["studies"]:
            module = study["protocolSection"]
            nct = module["identificationModule"]["nctId"]
            if statuses and nct in statuses:
                module["statusModule"]["overallStatus"] = statuses[nct]
        return 200, "application/json", json.dumps(page).encode()

    site.routes["/ctgov/api/v2/studies"] = studies
    site.requests.clear()


def test_trials_are_stored_and_updated_in_place(sample_site, tmp_path):
    sources = tmp_path / "s.toml"
    write_sources(sources, [SourceConfig("Trials", "clinicaltrials",
                                         f"{sample_site.url}/ctgov/api/v2/",
                                         options={"cond": "cancer", "intr": "immunotherapy"})])
    url = new_db_url(tmp_path, "t.db")
    _serve(sample_site)
    first = run_cli("crawl", "--sources", str(sources), *FAST, db_url=url)
    assert first.returncode == 0, first.stderr
    assert "5 new" in first.stdout

    calls = [q for _, path, q in sample_site.requests if path == "/ctgov/api/v2/studies"]
    assert len(calls) == 2 and "pageToken" not in calls[0]
    assert calls[1]["pageToken"] == ["page-2-token"]
    assert calls[0]["query.cond"] == ["cancer"] and calls[0]["query.intr"] == ["immunotherapy"]
    assert calls[0]["filter.advanced"][0].startswith("AREA[LastUpdatePostDate]RANGE[")

    with get_engine(url).connect() as c:
        row = c.execute(sa.text("SELECT title, kind, extra, canonical_url FROM articles "
                                "WHERE nct_id = 'NCT09000001'")).one()
    extra = stored_json(row.extra)
    assert row.kind == "trial" and row.canonical_url == "https://clinicaltrials.gov/study/NCT09000001"
    assert extra["status"] == "RECRUITING" and extra["phases"] == ["PHASE2"]
    assert extra["sponsor"] == "Halvorsen Cancer Institute" and extra["enrollment"] == 40
    assert {"type": "DRUG", "name": "Aldesleukin"} in extra["interventions"]
    assert extra["start_date"] == "2026-03-02" and extra["completion_date"] == "2029-12"

    _serve(sample_site, statuses={"NCT09000001": "ACTIVE_NOT_RECRUITING"})
    second = run_cli("crawl", "--sources", str(sources), *FAST, db_url=url)
    assert "0 new, 1 updated, 4 unchanged" in second.stdout
    with get_engine(url).connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM articles")).scalar() == 5
        extra = stored_json(c.execute(sa.text(
            "SELECT extra FROM articles WHERE nct_id = 'NCT09000001'")).scalar())
    assert extra["status"] == "ACTIVE_NOT_RECRUITING"
    assert [h["status"] for h in extra["status_history"]] == ["RECRUITING"]


def test_a_page_that_is_not_json_is_one_clear_error(sample_site, tmp_path):
    sample_site.routes["/ctgov-bad/studies"] = lambda q: (200, "text/html", b"<html>maintenance")
    sources = tmp_path / "s.toml"
    write_sources(sources, [SourceConfig("Trials", "clinicaltrials",
                                         f"{sample_site.url}/ctgov-bad/")])
    result = run_cli("crawl", "--sources", str(sources), *FAST,
                     db_url=new_db_url(tmp_path, "u.db"))
    assert result.returncode == 1
    assert "ERROR clinicaltrials: clinicaltrials 'Trials': not a studies page" in result.stderr
