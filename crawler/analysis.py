"""The CPU-heavy steps of an item (text extraction, tagging, MinHash) run in worker processes,
so the crawler's own process keeps fetching and storing meanwhile.

Workers get text and return only small results (entity counts, a summary, a signature), not
spaCy Docs. ANALYSIS_WORKERS sets how many (default: one fewer than the CPUs, at least one);
0 runs everything in the crawler's process.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from crawler.extract import Extracted
    from crawler.items import Analysed

# spaCy, trafilatura and datasketch are imported inside the functions below, which run in the
# worker processes: the crawler's own process then starts without loading them.

T = TypeVar("T")


@dataclass(frozen=True)
class Tags:
    summary: str
    mentions: dict[str, int]
    relevance: float
    language: str | None
    cites: dict[str, list[str]]
    labels: dict[str, object]


def tag_text(title: str, body: str) -> Tags:
    from nlp.identifiers import cited_identifiers
    from nlp.labels import article_labels
    from nlp.language import guess_language
    from nlp.relevance import relevance
    from nlp.tagger import annotate_article

    annotation = annotate_article(title, body)
    return Tags(
        summary=annotation.summary,
        mentions=dict(annotation.mention_counts()),
        relevance=relevance(annotation.entities, len(title)),
        language=guess_language(f"{title}\n{body}"),
        cites=cited_identifiers(body),
        labels=article_labels(title, body).as_dict(),
    )


def minhash(title: str, body: str) -> list[int]:
    from crawler.dedupe import signature

    return signature(title, body)


def analyse(title: str, body: str, with_signature: bool) -> tuple[Tags, list[int] | None]:
    """An item's tags and, WITH_SIGNATURE, its MinHash signature: one trip to a worker (each
    trip costs the crawler's own process about a millisecond, and its pace is the crawl's)."""
    return tag_text(title, body), minhash(title, body) if with_signature else None


def extract(html: str, url: str) -> Extracted | None:
    from crawler.extract import extract_article

    return extract_article(html, url)


def clean_title(title: str) -> str:
    return " ".join(title.split())


def clean_body(text: str) -> str:
    """Paragraphs of TEXT with their whitespace made single, one blank line between them."""
    paragraphs = (" ".join(p.split()) for p in text.replace("\r", "").split("\n"))
    return "\n\n".join(p for p in paragraphs if p)


def extract_and_analyse(html: str, url: str, title: str, feed_body: str, kind: str
                        ) -> tuple[Extracted | None, Analysed]:
    """A page extracted and its text analysed in one trip to a worker: the body is the page's
    text, or the feed's when that is longer, as the feed spider chooses it; the title TITLE, or
    the page's when TITLE is empty (a sitemap names none); title and body cleaned as the
    normalising pipeline cleans them."""
    from crawler.items import Analysed

    extracted = extract(html, url)
    body = extracted.text if extracted is not None and len(extracted.text) >= len(
        feed_body) else feed_body
    if not title and extracted is not None:
        title = extracted.title or ""
    title, body = clean_title(title), clean_body(body)
    tags, signature = analyse(title, body, kind == "news")
    return extracted, Analysed(title, body, tags, signature)


def _warm_up() -> None:
    """Load the spaCy pipeline once per worker, before the first item arrives."""
    from nlp.parallel import die_with_parent
    from nlp.pipeline import get_pipeline

    die_with_parent()
    get_pipeline()


class AnalysisPool:
    def __init__(self, workers: int | None = None):
        if workers is None:
            workers = max(1, (os.cpu_count() or 2) - 1)
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        if self.workers == 0:
            return function(*args)
        if self._executor is None:
            # spawn, not fork: the crawler's process runs an event loop and threads
            self._executor = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_warm_up)
        return await asyncio.wrap_future(self._executor.submit(function, *args))

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


_pools: dict[int | None, AnalysisPool] = {}


def pool_for(settings: Any) -> AnalysisPool:
    """The process's pool for these crawler settings (shared by its spiders and pipelines)."""
    value = settings.get("ANALYSIS_WORKERS")
    workers = None if value in (None, "") else int(value)
    if workers not in _pools:
        _pools[workers] = AnalysisPool(workers)
    return _pools[workers]


def shutdown_pools() -> None:
    for pool in _pools.values():
        pool.shutdown()
    _pools.clear()
