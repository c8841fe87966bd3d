"""Evidence links: a news story citing a trial or paper is linked to the stored record."""

import re

from crawler.sources import SourceConfig, write_sources
from nlp.identifiers import cited_identifiers
from tests.conftest import FAST, FIXTURES, run_cli


def test_identifiers_found_in_text():
    text = ("Results (doi:10.1056/NEJMoa1715274.) were reported; see PMID: 29768149 and the "
            "trials NCT09000003 and nct12345678, NCT09000003 again.")
    assert cited_identifiers(text) == {"doi": ["10.1056/nejmoa1715274"], "pmid": ["29768149"],
                                       "nct_id": ["NCT09000003"]}
    assert cited_identifiers("No identifiers here, 10.5 percent.") == {}


def test_news_story_links_to_the_trial_it_cites(sample_site, tmp_path):
    sample_site.routes["/ct/studies"] = lambda q: (
        200, "application/json", (FIXTURES / "clinicaltrials" / "studies-page2.json"
                                  if q.get("pageToken") else
                                  FIXTURES / "clinicaltrials" / "studies-page1.json").read_bytes())
    sources = tmp_path / "s.toml"
    write_sources(sources, [
        SourceConfig("Wire", "feed", sample_site.feed_url("news")),
        SourceConfig("Trials", "clinicaltrials", f"{sample_site.url}/ct/"),
    ])
    url = f"sqlite:///{tmp_path}/e.db"
    assert run_cli("crawl", "--sources", str(sources), *FAST, db_url=url).returncode == 0

    from webapp import create_app

    client = create_app({"TESTING": True, "DATABASE_URL": url}).test_client()
    html = client.get("/search", query_string={"q": '"perioperative pembrolizumab"',
                                               "sort": "date"}).get_data(as_text=True)
    href = re.search(r'<h2><a href="(/articles/\d+)">Perioperative pembrolizumab improves', html)
    page = client.get(href.group(1)).get_data(as_text=True)
    assert "<h2>Evidence</h2>" in page
    assert "Perioperative Pembrolizumab in Resectable Non-Small Cell Lung Cancer" in page
    assert "(trial, NCT09000003)" in page
