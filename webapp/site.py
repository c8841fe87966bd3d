"""The reader's pages: home, search with facets, article, concept pages."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from markupsafe import Markup, escape

from db.articles import evidence_for, get_article, related_articles
from db.concepts import (
    articles_per_month,
    children_of,
    co_occurring,
    concepts_for_articles,
    concepts_of_article,
    get_concept,
    lineage,
    therapy_cancer_map,
    with_descendants,
)
from db.query import parse_query
from db.search import MARK_END, MARK_START, Filters, search_articles
from db.sources import source_statuses
from db.stories import also_reported, story_of
from webapp.app import db_session
from webapp.links import (
    article_url,
    concept_url,
    filter_links,
    fixed_url,
    link,
    search_url,
    tag_chips,
    year_links,
)
from webapp.pagecache import cached
from webapp.params import LABEL_PARAM, NO_SUCH_CONCEPT, SearchParams, search_params_or_400

bp = Blueprint("site", __name__)
PER_PAGE = 20


@bp.app_template_filter("highlight")
def highlight(snippet: str | None) -> Markup:
    """Escape a search snippet, then mark the matched words."""
    if not snippet:
        return Markup("")
    escaped = str(escape(snippet))
    return Markup(escaped.replace(MARK_START, "<mark>").replace(MARK_END, "</mark>"))


@bp.app_template_filter("web_url")
def web_url(url: str | None) -> str | None:
    """URL if it is http(s), else None: a crawled javascript: or data: link is never a link."""
    return url if url and url.lower().startswith(("http://", "https://")) else None


LINKS_OUT = {
    "doi": ("DOI", "https://doi.org/{}"),
    "pmid": ("PubMed", "https://pubmed.ncbi.nlm.nih.gov/{}/"),
    "pmcid": ("PubMed Central", "https://www.ncbi.nlm.nih.gov/pmc/articles/{}/"),
    "nct_id": ("ClinicalTrials.gov", "https://clinicaltrials.gov/study/{}"),
}


def links_out(article: Any) -> list[tuple[str, str, str]]:
    """(service, identifier, URL) for each identifier the article has."""
    return [(service, value, pattern.format(quote(value, safe="/:.()")))
            for name, (service, pattern) in LINKS_OUT.items()
            if (value := getattr(article, name))]


@bp.app_template_filter("mark_tags")
def mark_tags(text: str | None, concepts: list[Any]) -> Markup:
    """TEXT escaped, with the names of CONCEPTS (each concept's name and synonyms, whole
    words, any case) marked by label."""
    if not text:
        return Markup("")
    label_of: dict[str, str] = {}
    for concept in concepts:
        for form in (concept.name, *(concept.synonyms or [])):
            if len(form) >= 2:
                label_of.setdefault(form.lower(), concept.label.lower())
    if not label_of:
        return escape(text)
    forms = sorted(label_of, key=len, reverse=True)  # the longest name wins
    pattern = re.compile(r"(?<!\w)(" + "|".join(re.escape(f) for f in forms) + r")(?!\w)",
                         re.IGNORECASE)
    out, last = [], 0
    for match in pattern.finditer(text):
        out.append(str(escape(text[last:match.start()])))
        label = label_of[match.group(0).lower()]
        out.append(f'<mark class="tag tag-{label}">{escape(match.group(0))}</mark>')
        last = match.end()
    out.append(str(escape(text[last:])))
    return Markup("".join(out))


@bp.record_once
def _template_globals(state) -> None:  # type: ignore[no-untyped-def]
    # a global, not a context processor, so imported macros see it too
    state.app.jinja_env.globals.update(LABEL_PARAM=LABEL_PARAM, search_url=search_url,
                                       concept_url=concept_url, article_url=article_url,
                                       tag_chips=tag_chips, link=link, fixed_url=fixed_url,
                                       filter_links=filter_links, year_links=year_links)


def _search_page(template: str, params: SearchParams) -> str:
    session = db_session()
    page = search_articles(
        session,
        params.parsed,
        params.slugs,
        page=params.page,
        per_page=PER_PAGE,
        sort=params.sort,
        filters=params.others,
    )
    ids = [hit.article.id for hit in page.hits]
    tags = concepts_for_articles(session, ids)
    feed_args = params.query_args(page=None, sort=None)
    return render_template(
        template,
        params=params,
        page=page,
        tags=tags,
        also=also_reported(session, ids),
        feed_url=link("feeds.json_feed", feed_args),
        atom_url=link("feeds.atom_feed", feed_args),
    )


HOME_NEWS, HOME_PAPERS, HOME_TRIALS = 15, 8, 8


@bp.get("/")
@cached
def home() -> str:
    """The latest news by day (a story told by several sources once, with who else told it),
    the latest papers and preprints, and the trials most recently updated."""
    session = db_session()
    everything = parse_query("")

    def latest(kinds: list[str], count: int) -> list[Any]:
        return search_articles(session, everything, per_page=count, sort="date",
                               filters=Filters(kinds=kinds), facet_limit=0).hits

    news = latest(["news"], HOME_NEWS)
    papers = latest(["paper", "preprint"], HOME_PAPERS)
    trials = latest(["trial"], HOME_TRIALS)
    ids = [hit.article.id for hit in (*news, *papers, *trials)]
    days: dict[str, list[Any]] = {}
    for hit in news:
        when = hit.article.published_at or hit.article.fetched_at
        days.setdefault(when.strftime("%A %d %B %Y") if when else "Undated", []).append(hit)
    return render_template("home.html", days=days, papers=papers, trials=trials,
                           tags=concepts_for_articles(session, ids),
                           also=also_reported(session, ids), params=SearchParams(sort="date"))


@bp.get("/search")
@cached
def search() -> Response | str:
    params = search_params_or_400(request.args)
    canonical = params.canonical_args()
    if canonical is not None:  # "therapy:x" typed in the box becomes a filter of the URL
        return redirect(url_for("site.search", **canonical))
    return _search_page("search.html", params)


@bp.get("/articles/<int:article_id>")
def article(article_id: int) -> str:
    session = db_session()
    found = get_article(session, article_id)
    if found is None:
        abort(404, description="There is no article with that number.")
    tags = concepts_of_article(session, found.id)  # in full: the excerpt marks synonyms too
    return render_template("article.html", article=found, tags=tags,
                           others=story_of(session, found),
                           evidence=evidence_for(session, found),
                           related=related_articles(session, found),
                           links_out=links_out(found))


CHART_WIDTH, CHART_HEIGHT = 480, 120


@dataclass(frozen=True)
class Bar:
    x: int
    y: int
    width: int
    height: int
    month: str
    count: int


def month_bars(months: list[tuple[str, int]]) -> list[Bar]:
    """Bars of an SVG chart of MONTHS ("YYYY-MM", count), drawn on the server."""
    if not months:
        return []
    top = max(count for _, count in months) or 1
    step = CHART_WIDTH // len(months)
    bars = []
    for i, (month, count) in enumerate(months):
        height = round(count / top * (CHART_HEIGHT - 20))
        bars.append(Bar(i * step + 1, CHART_HEIGHT - height, step - 2, height, month, count))
    return bars


@bp.get("/<any(therapy, cancer, target):kind>/<slug>")
@cached
def concept(kind: str, slug: str) -> Response | str:
    session = db_session()
    found = get_concept(session, slug)
    if found is None:
        abort(404, description=NO_SUCH_CONCEPT)
    right_kind = LABEL_PARAM[found.label]
    if right_kind != kind:  # /therapy/melanoma: the reader meant the cancer page
        return redirect(url_for("site.concept", kind=right_kind, slug=slug), code=308)
    ids = with_descendants(session, slug)
    latest = search_articles(session, parse_query(""), [slug], per_page=10, sort="date",
                             facet_limit=0)  # the page shows no facets
    article_ids = [hit.article.id for hit in latest.hits]
    months = articles_per_month(session, ids)
    parents = lineage(session, found)
    return render_template(
        "concept.html",
        concept=found,
        kind=kind,
        parents=parents,
        children=children_of(session, slug),
        months=months,
        bars=month_bars(months),
        chart=(CHART_WIDTH, CHART_HEIGHT),
        together=co_occurring(session, ids, leave_out=(c.id for c in parents)),
        latest=latest,
        tags=concepts_for_articles(session, article_ids),
        also=also_reported(session, article_ids),
        feed_url=url_for("feeds.concept_feed", kind=kind, slug=slug),
        atom_url=url_for("feeds.concept_atom", kind=kind, slug=slug),
    )


HEAT_LEVELS = 5


@bp.get("/map")
@cached
def pair_map() -> str:
    """Therapies by cancer types: how much news and evidence exists for each pair."""
    found = therapy_cancer_map(db_session())
    most = found.most or 1

    def level(count: int) -> int:  # 0 for none, then 1..HEAT_LEVELS by share of the largest
        return 0 if not count else max(1, round(count / most * HEAT_LEVELS))

    return render_template("map.html", map=found, level=level)


@bp.get("/sources")
def sources() -> str:
    return render_template("sources.html", sources=source_statuses(db_session()))


@bp.get("/about")
def about() -> str:
    return render_template("about.html")
