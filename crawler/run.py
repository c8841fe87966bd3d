"""Run a crawl in this process and report what it stored."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field

from crawler.sources import SourceConfig

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


@dataclass
class CrawlReport:
    sources: int
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    item_errors: int = 0
    not_modified: int = 0
    known: int = 0
    skipped: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    not_started: list[str] = field(default_factory=list)  # spiders that could not open

    def line(self) -> str:
        return (
            f"crawled {self.sources - len(self.skipped)} source(s): {self.new} new, {self.updated} "
            f"updated, {self.unchanged} unchanged article(s); {len(self.errors)} source(s) failed"
            + (f"; {self.not_modified} not modified" if self.not_modified else "")
            + (f"; {self.known} already stored" if self.known else "")
            + (f"; {len(self.skipped)} backing off" if self.skipped else "")
            + (f"; {self.item_errors} article(s) could not be stored" if self.item_errors else "")
            + (f"; the {', '.join(self.not_started)} crawl could not start"
               if self.not_started else "")
        )


def run_crawl(sources: list[SourceConfig], database_url: str, log_level: str = "WARNING",
              settings: dict[str, object] | None = None) -> CrawlReport:
    """Crawl SOURCES, each with the spider of its type, into DATABASE_URL. Runs the Twisted
    reactor, so it can be called once per process."""
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "crawler.settings")
    from scrapy import signals as scrapy_signals
    from scrapy.crawler import CrawlerProcess
    from scrapy.utils.project import get_project_settings

    from crawler.analysis import shutdown_pools
    from crawler.spiders import SPIDERS

    project = get_project_settings()
    project.set("IMMUNOFEED_DATABASE_URL", database_url)
    project.set("LOG_LEVEL", log_level)
    project.set("LOG_FORMAT", LOG_FORMAT)
    for name, value in (settings or {}).items():
        project.set(name, value)
    process = CrawlerProcess(project)
    crawlers = []
    opened: set[str] = set()
    for source_type in dict.fromkeys(s.type for s in sources):  # one spider per type present
        crawler = process.create_crawler(SPIDERS[source_type])
        # a spider whose opening failed (its store could not be prepared) is closed unopened:
        # the report must say so rather than count it a crawl that found nothing
        crawler.signals.connect(lambda spider: opened.add(spider.name),
                                signal=scrapy_signals.spider_opened, weak=False)
        process.crawl(crawler, sources=sources)
        crawlers.append(crawler)
    try:
        process.start()
    finally:
        shutdown_pools()
        # Scrapy leaves its shutdown handlers behind; without this Ctrl-C would be ignored by
        # whatever runs next in this process (the demo's web server).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    report = CrawlReport(sources=len(sources))
    for crawler in crawlers:
        stats = crawler.stats.get_stats() if crawler.stats else {}
        spider = crawler.spider
        report.new += stats.get("immunofeed/articles_new", 0)
        report.updated += stats.get("immunofeed/articles_updated", 0)
        report.unchanged += stats.get("immunofeed/articles_unchanged", 0)
        report.item_errors += stats.get("immunofeed/items_failed", 0)
        report.not_modified += stats.get("immunofeed/feeds_not_modified", 0)
        report.known += stats.get("immunofeed/articles_known", 0)
        report.errors.update(getattr(spider, "source_errors", {}))
        report.skipped += list(getattr(spider, "skipped", []))
        if crawler.spidercls.name not in opened:
            report.not_started.append(crawler.spidercls.name)
    return report
