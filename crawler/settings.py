"""Scrapy settings for ImmunoFeed: polite by default."""

from db import settings as immunofeed_settings

BOT_NAME = "immunofeed"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"

# Site owners reading their logs should find who runs this crawler: the deployment's own /about
# page when IMMUNOFEED_BASE_URL is set, the project's home otherwise.
PROJECT_URL = "https://github.com/immunofeed/immunofeed"
_base_url = immunofeed_settings.get("BASE_URL").rstrip("/")
USER_AGENT = (
    f"ImmunoFeed/0.1 (+{_base_url + '/about' if _base_url else PROJECT_URL}; "
    "cancer-immunotherapy news aggregator)"
)
ROBOTSTXT_OBEY = True
CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 4
# Scrapy starts this many tasks for every response's output, however few items it holds; an
# article page holds one. 16 still lets a feed's own items (teaser-only entries) go through the
# pipelines together, and cut the crawler's CPU by a tenth in bench/crawl_throughput.py.
CONCURRENT_ITEMS = 16
DOWNLOAD_DELAY = 0.25
DOWNLOAD_TIMEOUT = 30
DOWNLOAD_MAXSIZE = 10 * 1024 * 1024
DOWNLOAD_WARNSIZE = 2 * 1024 * 1024
RETRY_TIMES = 2
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 0.25
AUTOTHROTTLE_TARGET_CONCURRENCY = 2.0
# Feeds and articles need no cookies, and Scrapy's cookie handling looks up public suffixes
# over the network on first use.
COOKIES_ENABLED = False
TELNETCONSOLE_ENABLED = False
# Scrapy 2.19 also starts an HTTP server that runs any Python code sent to it: not on a crawler
# that runs unattended beside a database.
REMOTE_CONTROL_ENABLED = False
LOG_LEVEL = "INFO"

DOWNLOADER_MIDDLEWARES = {
    # after the built-in retry middleware (550) in response order, so it sees 429/503 first
    "crawler.middlewares.RetryAfterMiddleware": 560,
}
RETRY_AFTER_MAX_WAIT = 30.0  # seconds worth waiting within a crawl
RETRY_AFTER_TIMES = 2

ITEM_PIPELINES = {
    "crawler.pipelines.NormalizePipeline": 100,
    "crawler.pipelines.AnalysisPipeline": 300,
    "crawler.pipelines.StorePipeline": 800,
}

REQUEST_FINGERPRINTER_IMPLEMENTATION = "2.7"
FEED_EXPORT_ENCODING = "utf-8"
