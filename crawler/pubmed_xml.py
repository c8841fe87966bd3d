"""PubmedArticleSet XML (E-utilities efetch, retmode=xml) into plain records.

Parsed with entity resolution and network access off, so a hostile document cannot expand
entities or make the parser fetch anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lxml import etree

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, recover=False,
                          remove_comments=True)
_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)}
_SEASONS = {"spring": 3, "summer": 6, "fall": 9, "autumn": 9, "winter": 12}
_LANGUAGES = {"eng": "en", "spa": "es", "fre": "fr", "ger": "de", "ita": "it", "por": "pt",
              "chi": "zh", "jpn": "ja", "rus": "ru", "dut": "nl"}


class PubMedXMLError(ValueError):
    pass


@dataclass
class PubMedRecord:
    pmid: str
    title: str
    abstract_sections: list[tuple[str | None, str]] = field(default_factory=list)
    doi: str | None = None
    pmcid: str | None = None
    journal: str | None = None
    published: datetime | None = None
    language: str | None = None
    authors: list[dict[str, Any]] = field(default_factory=list)
    mesh: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    publication_types: list[str] = field(default_factory=list)

    @property
    def abstract(self) -> str:
        """Sections one paragraph each, labelled as PubMed shows them (RESULTS: …)."""
        return "\n\n".join(f"{label}: {text}" if label else text
                           for label, text in self.abstract_sections)

    @property
    def url(self) -> str:
        return f"https://pubmed.ncbi.nlm.nih.gov/{self.pmid}/"


def _text(element: etree._Element | None) -> str:
    """All text inside ELEMENT (inline <i>, <sup>… included), whitespace folded."""
    if element is None:
        return ""
    return " ".join("".join(element.itertext()).split())


def _month(value: str) -> int | None:
    value = value.strip().lower()
    if value.isdecimal():
        return int(value) if 1 <= int(value) <= 12 else None
    return _MONTHS.get(value[:3]) or _SEASONS.get(value)


def parse_partial_date(year: str | None, month: str | None = None,
                       day: str | None = None) -> datetime | None:
    """A date from PubMed's parts, any of month and day missing ("2019", "2019 Mar")."""
    if not year or not year.strip().isdecimal():
        return None
    m = _month(month) if month else None
    d = int(day) if day and day.strip().isdecimal() else None
    try:
        return datetime(int(year), m or 1, d or 1, tzinfo=UTC)
    except ValueError:
        return datetime(int(year), m or 1, 1, tzinfo=UTC)


def parse_medline_date(value: str) -> datetime | None:
    """MedlineDate free text: "2019 Mar-Apr", "1998 Dec-1999 Jan", "2000 Spring", "2012"."""
    match = re.match(r"\s*(\d{4})(?:\s+([A-Za-z]+))?(?:\s+(\d{1,2}))?", value)
    if not match:
        return None
    return parse_partial_date(*match.groups())


def _published(article: etree._Element) -> datetime | None:
    electronic = article.find("ArticleDate")
    if electronic is not None:
        found = parse_partial_date(electronic.findtext("Year"), electronic.findtext("Month"),
                                   electronic.findtext("Day"))
        if found:
            return found
    pub_date = article.find("Journal/JournalIssue/PubDate")
    if pub_date is None:
        return None
    if pub_date.find("MedlineDate") is not None:
        return parse_medline_date(pub_date.findtext("MedlineDate") or "")
    return parse_partial_date(pub_date.findtext("Year"), pub_date.findtext("Month"),
                              pub_date.findtext("Day"))


def _author(element: etree._Element) -> dict[str, Any] | None:
    collective = _text(element.find("CollectiveName"))
    name = collective or " ".join(
        p for p in (element.findtext("ForeName"), element.findtext("LastName")) if p
    )
    if not name:
        return None
    affiliations = [_text(a) for a in element.findall("AffiliationInfo/Affiliation")]
    return {"name": name, "affiliations": [a for a in affiliations if a]}


def _record(node: etree._Element) -> PubMedRecord | None:
    citation = node.find("MedlineCitation")
    article = citation.find("Article") if citation is not None else None
    pmid = citation.findtext("PMID") if citation is not None else None
    if article is None or not pmid:
        return None
    ids = {i.get("IdType"): (i.text or "").strip()
           for i in node.findall("PubmedData/ArticleIdList/ArticleId")}
    doi = ids.get("doi") or next(
        ((e.text or "").strip() for e in article.findall("ELocationID")
         if e.get("EIdType") == "doi"), None)
    language = (article.findtext("Language") or "").strip()
    return PubMedRecord(
        pmid=pmid.strip(),
        title=_text(article.find("ArticleTitle")) or _text(article.find("VernacularTitle")),
        abstract_sections=[
            (t.get("Label"), _text(t)) for t in article.findall("Abstract/AbstractText")
            if _text(t)
        ],
        doi=doi or None,
        pmcid=ids.get("pmc") or None,
        journal=_text(article.find("Journal/Title")) or None,
        published=_published(article),
        language=_LANGUAGES.get(language, language[:2] or None),
        authors=[a for a in map(_author, article.findall("AuthorList/Author")) if a],
        mesh=[_text(m) for m in citation.findall("MeshHeadingList/MeshHeading/DescriptorName")],
        keywords=[_text(k) for k in citation.findall("KeywordList/Keyword") if _text(k)],
        publication_types=[_text(p) for p in
                           article.findall("PublicationTypeList/PublicationType")],
    )


def parse_pubmed_articles(data: bytes) -> list[PubMedRecord]:
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise PubMedXMLError(f"not PubMed XML: {exc}") from None
    if root.tag != "PubmedArticleSet":
        raise PubMedXMLError(f"expected <PubmedArticleSet>, got <{root.tag}>")
    return [r for r in map(_record, root.findall("PubmedArticle")) if r]


@dataclass(frozen=True)
class SearchResult:
    count: int
    query_key: str
    web_env: str


def parse_esearch(data: bytes) -> SearchResult:
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise PubMedXMLError(f"not an esearch result: {exc}") from None
    error = root.findtext("ERROR")
    if error:
        raise PubMedXMLError(f"PubMed search error: {error}")
    count, key, env = root.findtext("Count"), root.findtext("QueryKey"), root.findtext("WebEnv")
    if not (count and count.isdecimal() and key and env):
        raise PubMedXMLError("esearch result without Count, QueryKey and WebEnv")
    return SearchResult(int(count), key, env)
