"""Evidence links: a news story citing a trial or paper is linked to the stored record."""

import re

from crawler.sources import SourceConfig, write_sources
from nlp.identifiers import cited_identifiers
from tests.conftest import FAST, FIXTURES, app_client, new_db_url, run_cli


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
    url = new_db_url(tmp_path, "e.db")
    assert run_cli("crawl", "--sources", str(sources), *FAST, db_url=url).returncode == 0

    client = app_client(url)
    html = client.get("/search", query_string={"q": '"perioperative pembrolizumab"',
                                               "sort": "date"}).get_data(as_text=True)
    href = re.search(r'<h2><a href="(/articles/\d+)">Perioperative pembrolizumab improves', html)
    page = client.get(href.group(1)).get_data(as_text=True)
    assert "<h2>Evidence</h2>" in page
    assert "Perioperative Pembrolizumab in Resectable Non-Small Cell Lung Cancer" in page
    assert "(trial, NCT09000003)" in page


def test_story_naming_journal_and_author_links_to_the_paper(sample_site, tmp_path):
    """The seed story's pattern: "published in <journal> by <investigator>'s team"."""
    pubmed = FIXTURES / "pubmed"
    sample_site.routes["/ev-eutils/esearch.fcgi"] = lambda q: (
        200, "text/xml", (pubmed / "esearch2.xml").read_bytes())
    sample_site.routes["/ev-eutils/efetch.fcgi"] = lambda q: (
        200, "text/xml", (pubmed / "pubmed-29768149.xml").read_bytes())
    story = ("Budesonide-formoterol as needed was as good as daily steroids, according to a trial "
             "published this week in the New England Journal of Medicine. Paul O'Byrne, who led "
             "the study, said the findings change practice.")
    other = "A different trial in the New England Journal of Medicine, led by someone else."

    def feed(query):
        items = "".join(
            f"<item><title>{title}</title><link>https://news.example/{n}</link>"
            f"<pubDate>Mon, 21 May 2018 10:00:00 GMT</pubDate><description>{text}"
            "</description></item>"
            for n, (title, text) in enumerate([("Inhaler study", story), ("Other", other)]))
        return 200, "application/rss+xml", (
            f"<rss version='2.0'><channel><title>t</title>{items}</channel></rss>").encode()

    sample_site.routes["/ev-feed.rss"] = feed
    url = new_db_url(tmp_path, "j.db")
    papers = tmp_path / "papers.toml"
    write_sources(papers, [SourceConfig("PubMed", "pubmed", f"{sample_site.url}/ev-eutils/",
                                        options={"max_results": 1})])
    assert run_cli("crawl", "--sources", str(papers), *FAST, db_url=url).returncode == 0
    news = tmp_path / "news.toml"
    write_sources(news, [SourceConfig("News", "feed", f"{sample_site.url}/ev-feed.rss",
                                      fetch_pages=False, topical=True)])
    assert run_cli("crawl", "--sources", str(news), *FAST, db_url=url).returncode == 0

    from db.articles import evidence_for
    from db.models import Article
    from db.session import session_scope

    with session_scope(url) as s:
        by_title = {a.title: a for a in s.query(Article)}
        linked = [e.pmid for e in evidence_for(s, by_title["Inhaler study"])]
        unlinked = evidence_for(s, by_title["Other"])
    assert linked == ["29768149"]
    assert unlinked == []  # the journal alone is not enough


def test_journal_names_as_written_in_prose():
    from db.evidence import journal_key

    assert journal_key("The New England journal of medicine") == "new england journal of medicine"
    assert journal_key("Journal of magnetic resonance (San Diego, Calif. : 1997)") == \
        "journal of magnetic resonance"
