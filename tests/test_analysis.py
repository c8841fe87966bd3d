"""An article page's extraction and its text's analysis in one trip to a worker
(crawler.analysis.extract_and_analyse), and the pipeline using that analysis only while the item
still holds the text it was made from."""

import asyncio
import gzip

from crawler.analysis import AnalysisPool, analyse, clean_body, clean_title, extract_and_analyse
from crawler.extract import extract_article
from crawler.items import ArticleItem
from crawler.pipelines import AnalysisPipeline, NormalizePipeline
from tests.conftest import FIXTURES

PAGE = "686bb170effe273eaff1c0f88e412172e8d972518a6d1454c896f52aafaa9643.html.gz"
URL = "https://news.example.org/story"


class CountingPool(AnalysisPool):
    """The real in-process pool (no workers), counting the trips it is asked for."""

    def __init__(self) -> None:
        super().__init__(workers=0)
        self.trips = 0

    async def run(self, function, *args):  # type: ignore[no-untyped-def]
        self.trips += 1
        return await super().run(function, *args)


def _pipeline() -> tuple[AnalysisPipeline, CountingPool]:
    pipeline = AnalysisPipeline.__new__(AnalysisPipeline)
    pipeline.pool = CountingPool()
    return pipeline, pipeline.pool


def test_one_trip_gives_what_extraction_then_analysis_give():
    html = gzip.decompress((FIXTURES / "pages" / PAGE).read_bytes()).decode("utf-8")
    title = "  Checkpoint   inhibitors\nin melanoma "
    extracted, done = extract_and_analyse(html, URL, title, "A short teaser.", "news")
    assert extracted == extract_article(html, URL)
    assert (done.title, done.body) == (clean_title(title), clean_body(extracted.text))
    tags, signature = analyse(done.title, done.body, True)
    assert (done.tags, done.signature) == (tags, signature) and signature is not None
    # a sitemap names no title: the page's is analysed
    untitled, from_page = extract_and_analyse(html, URL, "", "", "news")
    assert from_page.title == clean_title(untitled.title) and from_page.title
    assert (from_page.tags, from_page.signature) == analyse(from_page.title, from_page.body, True)
    # the feed's text wins when the page gives less; papers get no signature
    _, from_feed = extract_and_analyse("<html><body></body></html>", URL, "T",
                                       "Pembrolizumab in melanoma.\n\nSecond  paragraph.", "paper")
    assert from_feed.body == "Pembrolizumab in melanoma.\n\nSecond paragraph."
    assert from_feed.signature is None and from_feed.tags.mentions


def test_the_pipeline_uses_the_analysis_only_for_the_text_it_was_made_of():
    pipeline, pool = _pipeline()
    title, body = "Nivolumab in melanoma", "Nivolumab helped patients with melanoma."
    _, done = extract_and_analyse("<html></html>", URL, title, body, "news")

    item = NormalizePipeline().process_item(ArticleItem(url=URL, title=title, body=body,
                                                        analysed=done))
    item = asyncio.run(pipeline.process_item(item))
    assert pool.trips == 0  # analysed with the page
    assert item.mentions == done.tags.mentions and item.signature == done.signature
    assert item.analysed is None

    changed = ArticleItem(url=URL, title=title, body=body + " Also in lung cancer.",
                          analysed=done)
    changed = asyncio.run(pipeline.process_item(NormalizePipeline().process_item(changed)))
    assert pool.trips == 1  # the text is not the one analysed: analysed again
    assert "lung-cancer" in changed.mentions
