"""The PubMed spider against a local server replaying real E-utilities responses
(tests/fixtures/pubmed, see SOURCE.md)."""

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from crawler.pubmed_xml import (
    PubMedXMLError,
    parse_esearch,
    parse_medline_date,
    parse_partial_date,
    parse_pubmed_articles,
)
from crawler.sources import SourceConfig, write_sources
from db.session import get_engine
from tests.conftest import FAST, FIXTURES, new_db_url, run_cli, stored_json

PUBMED = FIXTURES / "pubmed"
EFETCH_FILES = ["pubmed-29768149.xml", "pubmed1.xml", "pubmed2.xml", "pubmed4.xml",
                "pubmed5.xml", "pubmed6.xml", "pubmed7.xml"]


def test_parse_structured_abstract_and_identifiers():
    (record,) = parse_pubmed_articles((PUBMED / "pubmed4.xml").read_bytes())
    assert record.pmid == "27797938" and record.pmcid == "PMC5442267"
    assert record.doi == "10.1136/gutjnl-2016-312510"
    assert [label for label, _ in record.abstract_sections] == [
        "OBJECTIVE", "DESIGN", "RESULTS", "CONCLUSIONS"]
    assert record.abstract.startswith("OBJECTIVE: Telomere shortening")
    assert "TERT gene region" in record.title  # inline <i> kept as text
    assert record.journal == "Gut" and record.language == "en"
    assert record.published == datetime(2016, 10, 21, tzinfo=UTC)  # the electronic date
    assert record.authors[2] == {"name": "Chen Yuan", "affiliations": [
        "Department of Epidemiology, Harvard T.H. Chan School of Public Health, Boston, "
        "Massachusetts, USA.",
        "Department of Medical Oncology, Dana-Farber Cancer Institute, Boston, Massachusetts, "
        "USA."]}
    assert "Pancreatic Neoplasms" in record.mesh and "Observational Study" in \
        record.publication_types


def test_partial_and_medline_dates():
    assert parse_partial_date("2019", "Mar") == datetime(2019, 3, 1, tzinfo=UTC)
    assert parse_partial_date("2019") == datetime(2019, 1, 1, tzinfo=UTC)
    assert parse_partial_date("2019", "02", "31") == datetime(2019, 2, 1, tzinfo=UTC)
    assert parse_medline_date("2019 Mar-Apr") == datetime(2019, 3, 1, tzinfo=UTC)
    assert parse_medline_date("1998 Dec-1999 Jan") == datetime(1998, 12, 1, tzinfo=UTC)
    assert parse_medline_date("2000 Spring") == datetime(2000, 3, 1, tzinfo=UTC)
    assert parse_medline_date("Summer") is None
    xml = b"""<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID>1</PMID><Article>
      <Journal><JournalIssue><PubDate><MedlineDate>2012 Nov-Dec</MedlineDate></PubDate>
      </JournalIssue></Journal><ArticleTitle>T</ArticleTitle></Article></MedlineCitation>
      </PubmedArticle></PubmedArticleSet>"""
    assert parse_pubmed_articles(xml)[0].published == datetime(2012, 11, 1, tzinfo=UTC)


def test_hostile_or_wrong_xml_is_a_clear_error():
    bomb = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><PubmedArticleSet>'
            b"<PubmedArticle><MedlineCitation><PMID>1</PMID><Article><ArticleTitle>&b;"
            b"</ArticleTitle></Article></MedlineCitation></PubmedArticle></PubmedArticleSet>")
    records = parse_pubmed_articles(bomb)
    assert "aaaaaaaaaa" not in records[0].title  # entities are not expanded
    with pytest.raises(PubMedXMLError):
        parse_pubmed_articles(b"<html>oops</html>")
    with pytest.raises(PubMedXMLError):
        parse_esearch(b"<eSearchResult><ERROR>Invalid query</ERROR></eSearchResult>")


@pytest.fixture
def eutils(sample_site):
    """E-utilities at /eutils/ on the local site: the real esearch, then one real efetch file
    per batch of 200."""
    def esearch(query):
        return 200, "text/xml", (PUBMED / "esearch2.xml").read_bytes()

    def efetch(query):
        index = int(query["retstart"][0]) // 200
        return 200, "text/xml", (PUBMED / EFETCH_FILES[index]).read_bytes()

    sample_site.routes["/eutils/esearch.fcgi"] = esearch
    sample_site.routes["/eutils/efetch.fcgi"] = efetch
    sample_site.requests.clear()
    yield f"{sample_site.url}/eutils/"
    del sample_site.routes["/eutils/esearch.fcgi"], sample_site.routes["/eutils/efetch.fcgi"]


def test_pubmed_crawl_stores_papers_politely(eutils, sample_site, tmp_path):
    sources = tmp_path / "s.toml"
    write_sources(sources, [SourceConfig(
        "PubMed", "pubmed", eutils, topical=True,
        options={"query": "pembrolizumab", "days": 30, "max_results": 1400,
                 "api_key": "k3y", "tool": "immunofeed", "email": "ops@immunofeed.example"})])
    url = new_db_url(tmp_path, "p.db")
    result = run_cli("crawl", "--sources", str(sources), *FAST, db_url=url)
    assert result.returncode == 0, result.stderr
    assert "9 new" in result.stdout

    calls = [(t, path, q) for t, path, q in sample_site.requests if path.startswith("/eutils/")]
    (_, _, search), *fetches = calls
    assert search["term"] == ["pembrolizumab"] and search["usehistory"] == ["y"]
    assert search["reldate"] == ["30"] and search["retmax"] == ["0"]
    assert len(fetches) == 7
    for _, _, q in fetches:
        assert q["WebEnv"] == ["MCID_6927d6e7fee3e90f880ec190"] and q["query_key"] == ["1"]
        assert int(q["retmax"][0]) <= 200
        assert q["api_key"] == ["k3y"] and q["tool"] == ["immunofeed"]
        assert q["email"] == ["ops@immunofeed.example"]
    times = [t for t, _, _ in calls]
    # Scrapy sends them 0.105 s apart (at most 10 a second with a key); where they arrive, a
    # busy machine adds some milliseconds to one and not the next
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert sum(gaps) / len(gaps) >= 0.1 and min(gaps) >= 0.05, gaps

    with get_engine(url).connect() as c:
        rows = c.execute(sa.text("SELECT pmid, doi, pmcid, kind, body, extra, canonical_url "
                                 "FROM articles ORDER BY pmid")).all()
    assert len(rows) == 9 and {r.kind for r in rows} == {"paper"}
    with get_engine(url).connect() as c:  # a topical source keeps even off-topic records
        assert c.execute(sa.text("SELECT count(*) FROM articles WHERE filtered")).scalar() == 0
    nejm = next(r for r in rows if r.pmid == "29768149")
    assert nejm.doi == "10.1056/nejmoa1715274"
    assert nejm.canonical_url == "https://pubmed.ncbi.nlm.nih.gov/29768149/"
    assert "RESULTS:" in nejm.body and "CONCLUSIONS:" in nejm.body
    assert stored_json(nejm.extra)["journal"] == "The New England journal of medicine"


def test_pubmed_without_a_key_keeps_to_three_requests_a_second(eutils, sample_site, tmp_path):
    sources = tmp_path / "s.toml"
    write_sources(sources, [SourceConfig("PubMed", "pubmed", eutils,
                                         options={"max_results": 600})])
    result = run_cli("crawl", "--sources", str(sources), *FAST,
                     db_url=new_db_url(tmp_path, "q.db"))
    assert result.returncode == 0, result.stderr
    times = [t for t, path, _ in sample_site.requests if path.startswith("/eutils/")]
    assert len(times) == 4
    assert min(b - a for a, b in zip(times, times[1:], strict=False)) >= 0.32


def test_pubmed_search_error_is_one_clear_line(sample_site, tmp_path):
    sample_site.routes["/bad-eutils/esearch.fcgi"] = lambda q: (
        200, "text/xml", b"<eSearchResult><ERROR>Invalid query syntax</ERROR></eSearchResult>")
    sources = tmp_path / "s.toml"
    write_sources(sources, [SourceConfig("PubMed", "pubmed", f"{sample_site.url}/bad-eutils/")])
    result = run_cli("crawl", "--sources", str(sources), *FAST,
                     db_url=new_db_url(tmp_path, "r.db"))
    assert result.returncode == 1
    assert "ERROR pubmed: pubmed 'PubMed': PubMed search error: Invalid query syntax" in \
        result.stderr
