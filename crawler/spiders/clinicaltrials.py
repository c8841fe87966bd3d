"""ClinicalTrials.gov API v2: /api/v2/studies, paged with pageToken, recently updated first."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import scrapy
from scrapy.http import Response

from crawler.items import ArticleItem
from crawler.pubmed_xml import parse_partial_date
from crawler.sources import SourceConfig
from crawler.spiders.base import SourceSpider
from crawler.state import SourceState

DEFAULT_TERM = ("immunotherapy OR checkpoint inhibitor OR CAR-T OR chimeric antigen receptor "
                "OR tumor-infiltrating lymphocytes OR bispecific OR cancer vaccine")
PAGE_SIZE = 100


def _date(value: str | None) -> datetime | None:
    """ClinicalTrials.gov dates are "2026-03-02" or "2027-01"."""
    if not value:
        return None
    parts = value.split("-")
    return parse_partial_date(parts[0], *(parts[1:3]))


def study_item(study: dict[str, Any], source: str, topical: bool = True) -> ArticleItem | None:
    protocol = study.get("protocolSection") or {}
    ident = protocol.get("identificationModule") or {}
    nct = ident.get("nctId")
    title = ident.get("briefTitle") or ident.get("officialTitle")
    if not nct or not title:
        return None
    status = protocol.get("statusModule") or {}
    design = protocol.get("designModule") or {}
    description = protocol.get("descriptionModule") or {}
    sponsor = (protocol.get("sponsorCollaboratorsModule") or {}).get("leadSponsor") or {}
    interventions = (protocol.get("armsInterventionsModule") or {}).get("interventions") or []
    url = f"https://clinicaltrials.gov/study/{nct}"
    return ArticleItem(
        url=url,
        canonical_url=url,
        title=title,
        body=description.get("briefSummary") or "",
        source=source,
        published_at=_date((status.get("studyFirstPostDateStruct") or {}).get("date")),
        language="en",
        kind="trial",
        topical=topical,
        nct_id=nct,
        extra={
            "official_title": ident.get("officialTitle"),
            "status": status.get("overallStatus"),
            "phases": design.get("phases") or [],
            "conditions": (protocol.get("conditionsModule") or {}).get("conditions") or [],
            "interventions": [{"type": i.get("type"), "name": i.get("name")}
                              for i in interventions],
            "sponsor": sponsor.get("name"),
            "start_date": (status.get("startDateStruct") or {}).get("date"),
            "completion_date": (status.get("completionDateStruct") or {}).get("date"),
            "enrollment": (design.get("enrollmentInfo") or {}).get("count"),
            "last_update": (status.get("lastUpdatePostDateStruct") or {}).get("date"),
        },
    )


class ClinicalTrialsSpider(SourceSpider):
    name = "clinicaltrials"
    source_type = "clinicaltrials"

    def _page_request(self, source: SourceConfig, token: str | None = None,
                      seen: int = 0) -> scrapy.Request:
        params: dict[str, Any] = {"format": "json", "pageSize": PAGE_SIZE,
                                  "sort": "LastUpdatePostDate:desc"}
        for key in ("cond", "intr", "term"):
            if source.options.get(key):
                params[f"query.{key}"] = source.options[key]
        if not any(k.startswith("query.") for k in params):
            params["query.term"] = DEFAULT_TERM
        since = date.today() - timedelta(days=source.options.get("days", 30))
        params["filter.advanced"] = f"AREA[LastUpdatePostDate]RANGE[{since.isoformat()},MAX]"
        if token:
            params["pageToken"] = token
        return scrapy.Request(
            f"{source.url.rstrip('/')}/studies?{urlencode(params)}",
            callback=self.parse_page, errback=self.request_failed,
            cb_kwargs={"source": source, "seen": seen}, dont_filter=True,
        )

    def first_requests(self, source: SourceConfig,
                       state: SourceState | None) -> Iterable[scrapy.Request]:
        yield self._page_request(source)

    def parse_page(self, response: Response, source: SourceConfig, seen: int) -> Iterator[Any]:
        try:
            page = json.loads(response.body)
            studies = page["studies"]
        except (ValueError, KeyError, TypeError) as exc:
            self.source_failed(source, f"not a studies page at {response.url} ({exc})")
            return
        self.source_succeeded(source)
        for study in studies:
            item = study_item(study, source.name, source.topical) if isinstance(study, dict) \
                else None
            if item is not None:
                yield item
        seen += len(studies)
        token = page.get("nextPageToken")
        if token and seen < source.options.get("max_results", 1000):
            yield self._page_request(source, token, seen)


