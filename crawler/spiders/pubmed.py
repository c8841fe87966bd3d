"""PubMed through NCBI E-utilities: esearch with usehistory, then efetch in batches."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlencode

import scrapy
from scrapy.http import Response

from crawler.items import ArticleItem
from crawler.pubmed_xml import PubMedRecord, PubMedXMLError, parse_esearch, parse_pubmed_articles
from crawler.sources import SourceConfig
from crawler.spiders.base import SourceSpider
from crawler.state import SourceState

DEFAULT_QUERY = (
    '("immunotherapy"[tiab] OR "immune checkpoint inhibitor*"[tiab] OR "CAR-T"[tiab] OR '
    '"chimeric antigen receptor"[tiab] OR "tumor-infiltrating lymphocyte*"[tiab] OR '
    '"bispecific"[tiab] OR "cancer vaccine*"[tiab] OR "Immunotherapy"[MeSH]) AND '
    '("Neoplasms"[MeSH] OR cancer[tiab] OR tumor[tiab] OR tumour[tiab])'
)
BATCH = 200  # efetch records per request: NCBI asks for no more
RATE_WITHOUT_KEY, RATE_WITH_KEY = 3, 10  # requests per second NCBI allows


def _kind(record: PubMedRecord) -> str:
    return "preprint" if "Preprint" in record.publication_types else "paper"


def record_item(record: PubMedRecord, source: str, topical: bool = True) -> ArticleItem:
    return ArticleItem(
        topical=topical,
        url=record.url,
        canonical_url=record.url,
        title=record.title,
        body=record.abstract,
        source=source,
        published_at=record.published,
        language=record.language,
        kind=_kind(record),
        doi=record.doi.lower() if record.doi else None,
        pmid=record.pmid,
        pmcid=record.pmcid,
        extra={
            "journal": record.journal,
            "authors": record.authors,
            "mesh": record.mesh,
            "keywords": record.keywords,
            "publication_types": record.publication_types,
            "abstract_sections": [{"label": label, "text": text}
                                  for label, text in record.abstract_sections],
        },
    )


class PubMedSpider(SourceSpider):
    name = "pubmed"
    source_type = "pubmed"
    # one request at a time, evenly spaced (no random jitter) to stay within NCBI's rate
    custom_settings = {"CONCURRENT_REQUESTS_PER_DOMAIN": 1, "AUTOTHROTTLE_ENABLED": False,
                       "RANDOMIZE_DOWNLOAD_DELAY": False}

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        keyed = any(s.options.get("api_key") for s in self.sources)
        # one request at a time, spaced to NCBI's limit with a twentieth to spare: requests
        # leave evenly but reach the server with a few milliseconds of jitter
        self.download_delay = 1.05 / (RATE_WITH_KEY if keyed else RATE_WITHOUT_KEY)

    def _params(self, source: SourceConfig, **params: Any) -> str:
        common = {"db": "pubmed"}
        for key in ("api_key", "tool", "email"):
            if source.options.get(key):
                common[key] = source.options[key]
        return urlencode({**common, **params})

    def _endpoint(self, source: SourceConfig, name: str) -> str:
        return source.url.rstrip("/") + f"/{name}.fcgi"

    def first_requests(self, source: SourceConfig,
                       state: SourceState | None) -> Iterable[scrapy.Request]:
        params = self._params(
            source, term=source.options.get("query", DEFAULT_QUERY), usehistory="y", retmax=0,
            datetype="edat", reldate=source.options.get("days", 7),
        )
        yield scrapy.Request(f"{self._endpoint(source, 'esearch')}?{params}",
                             callback=self.parse_search, errback=self.request_failed,
                             cb_kwargs={"source": source}, dont_filter=True)

    def parse_search(self, response: Response, source: SourceConfig) -> Iterator[scrapy.Request]:
        try:
            result = parse_esearch(response.body)
        except PubMedXMLError as exc:
            self.source_failed(source, str(exc))
            return
        total = min(result.count, source.options.get("max_results", 2000))
        self.logger.info("pubmed %r: %d records, fetching %d", source.name, result.count, total)
        if total == 0:
            self.source_succeeded(source)
        for start in range(0, total, BATCH):
            params = self._params(source, query_key=result.query_key, WebEnv=result.web_env,
                                  retstart=start, retmax=min(BATCH, total - start),
                                  retmode="xml", rettype="abstract")
            yield scrapy.Request(f"{self._endpoint(source, 'efetch')}?{params}",
                                 callback=self.parse_batch, errback=self.request_failed,
                                 cb_kwargs={"source": source}, dont_filter=True)

    def parse_batch(self, response: Response, source: SourceConfig) -> Iterator[ArticleItem]:
        try:
            records = parse_pubmed_articles(response.body)
        except PubMedXMLError as exc:
            self.source_failed(source, f"{exc} at {response.url}")
            return
        self.source_succeeded(source)
        for record in records:
            if record.title:
                yield record_item(record, source.name, source.topical)
