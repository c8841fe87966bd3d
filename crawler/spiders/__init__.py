"""One spider per source type."""

from crawler.spiders.base import SourceSpider
from crawler.spiders.clinicaltrials import ClinicalTrialsSpider
from crawler.spiders.europepmc import EuropePMCSpider
from crawler.spiders.feeds import FeedSpider
from crawler.spiders.pubmed import PubMedSpider
from crawler.spiders.sitemap import SitemapSpider

SPIDERS: dict[str, type[SourceSpider]] = {
    spider.source_type: spider
    for spider in (FeedSpider, PubMedSpider, ClinicalTrialsSpider, SitemapSpider,
                   EuropePMCSpider)
}
