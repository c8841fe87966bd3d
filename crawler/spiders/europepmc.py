"""Europe PMC REST search: papers and preprints (bioRxiv, medRxiv: SRC:PPR), paged with
cursorMark. A preprint whose record names its published version becomes one work with it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlencode

import scrapy
from scrapy.http import Response

from crawler.items import ArticleItem
from crawler.pubmed_xml import parse_partial_date
from crawler.sources import SourceConfig
from crawler.spiders.base import SourceSpider
from crawler.state import SourceState

DEFAULT_QUERY = ('(ABSTRACT:"immunotherapy" OR ABSTRACT:"checkpoint inhibitor" OR '
                 'ABSTRACT:"CAR-T" OR ABSTRACT:"chimeric antigen receptor") AND '
                 '(ABSTRACT:"cancer" OR ABSTRACT:"tumor" OR ABSTRACT:"tumour")')
PAGE_SIZE = 100
_LANGUAGES = {"eng": "en", "spa": "es", "fre": "fr", "ger": "de"}


def _published_version(result: dict[str, Any]) -> dict[str, str]:
    """Identifiers of the journal article a preprint became, if its record says."""
    corrections = (result.get("commentCorrectionList") or {}).get("commentCorrection") or []
    for link in corrections:
        if str(link.get("type", "")).lower().startswith("preprint of"):
            if link.get("source") == "MED" and link.get("id"):
                return {"pmid": str(link["id"])}
            if link.get("source") == "PMC" and link.get("id"):
                return {"pmcid": str(link["id"])}
    return {}


def result_item(result: dict[str, Any], source: str, topical: bool = True) -> ArticleItem | None:
    title = (result.get("title") or "").strip()
    record_id = result.get("id")
    if not title or not record_id:
        return None
    origin = result.get("source", "")
    url = f"https://europepmc.org/article/{origin}/{record_id}"
    doi = (result.get("doi") or "").lower() or None
    pmid, pmcid = result.get("pmid"), result.get("pmcid")
    kind = "preprint" if origin == "PPR" else "paper"
    extra: dict[str, Any] = {
        "journal": ((result.get("journalInfo") or {}).get("journal") or {}).get("title"),
        "authors": [{"name": a.get("fullName")}
                    for a in (result.get("authorList") or {}).get("author") or []
                    if a.get("fullName")],
        "publication_types": (result.get("pubTypeList") or {}).get("pubType") or [],
        "keywords": (result.get("keywordList") or {}).get("keyword") or [],
        "europepmc_id": f"{origin}/{record_id}",
    }
    if kind == "preprint":
        extra["preprint"] = {"doi": doi, "url": url,
                             "server": (result.get("bookOrReportDetails") or {}).get("publisher")}
        published = _published_version(result)
        if published:
            # one work: keyed by the journal article's identifier, the preprint kept as a link
            kind, doi = "paper", None
            pmid = published.get("pmid", pmid)
            pmcid = published.get("pmcid", pmcid)
    date = result.get("firstPublicationDate") or ""
    parts = date.split("-")
    language = result.get("language") or ""
    return ArticleItem(
        url=url, canonical_url=url, title=title,
        body=(result.get("abstractText") or "").strip(),
        source=source, published_at=parse_partial_date(*parts[:3]) if parts[0] else None,
        language=_LANGUAGES.get(language, language[:2] or None),
        kind=kind, doi=doi, pmid=pmid, pmcid=pmcid, extra=extra, topical=topical,
    )


class EuropePMCSpider(SourceSpider):
    name = "europepmc"
    source_type = "europepmc"

    def _page(self, source: SourceConfig, cursor: str = "*", seen: int = 0) -> scrapy.Request:
        query = source.options.get("query", DEFAULT_QUERY)
        if source.options.get("preprints_only"):
            query = f"({query}) AND SRC:PPR"
        params = {"query": query, "format": "json", "resultType": "core",
                  "pageSize": PAGE_SIZE, "cursorMark": cursor, "sort": "FIRST_PDATE_D desc"}
        return scrapy.Request(f"{source.url.rstrip('/')}/search?{urlencode(params)}",
                              callback=self.parse_page, errback=self.request_failed,
                              cb_kwargs={"source": source, "cursor": cursor, "seen": seen},
                              dont_filter=True)

    def first_requests(self, source: SourceConfig,
                       state: SourceState | None) -> Iterable[scrapy.Request]:
        yield self._page(source)

    def parse_page(self, response: Response, source: SourceConfig, cursor: str,
                   seen: int) -> Iterator[Any]:
        try:
            page = json.loads(response.body)
            results = page["resultList"]["result"]
        except (ValueError, KeyError, TypeError) as exc:
            self.source_failed(source, f"not a Europe PMC search result at {response.url} "
                                       f"({exc})")
            return
        self.source_succeeded(source)
        for result in results:
            item = result_item(result, source.name, source.topical) \
                if isinstance(result, dict) else None
            if item is not None:
                yield item
        seen += len(results)
        next_cursor = page.get("nextCursorMark")
        if (results and next_cursor and next_cursor != cursor
                and seen < source.options.get("max_results", 1000)):
            yield self._page(source, next_cursor, seen)
