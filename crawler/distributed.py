"""Several crawler processes, on one machine or many, splitting one crawl through Redis.

With IMMUNOFEED_REDIS_URL set, every spider's requests go through scrapy-redis: one priority
queue and one duplicate filter per spider type, both in Redis, so each page is fetched by exactly
one process however many run, and whatever one process finds (a feed's article links, a search's
next page) may be fetched by any other.

scrapy-redis leaves to its user when a crawl begins and ends. Here every process taking part
registers in a Redis sorted set of workers with a heartbeat, and says whether it is busy (it took
a request from the queue since it was last idle):

- A process that starts when no live worker is registered begins a new crawl: the previous
  crawl's queue and filter are cleared, so feeds and articles are fetched afresh. One that
  starts while others run joins their crawl.
- An idle process stays while the queue holds requests or another live worker is busy (that
  worker may be about to queue more); it stops when neither is true.
- The last process to leave clears the queue and filter. A killed process stops beating and
  counts as gone after STALE_SECONDS; one on the same machine, as soon as another process there
  finds its process id unused.

Joining, leaving and clearing each run as one Lua script, so two processes starting and stopping
at the same moment cannot both miss each other. The crawl's durable record stays the database:
requests a killed process had taken from the queue are lost to this crawl, and the next crawl
fetches the articles they would have stored, because feed entries are checked against what is
stored.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from scrapy import signals
from scrapy.exceptions import DontCloseSpider
from scrapy_redis.scheduler import Scheduler
from twisted.internet import task

from nlp.parallel import process_ended, process_name

logger = logging.getLogger(__name__)

KEY_PREFIX = "immunofeed:crawl:%(spider)s"
HEARTBEAT_SECONDS = 1.0
STALE_SECONDS = 10.0

# KEYS: workers (zset of id -> last beat), busy (set of ids), queue, filter, lost (set when a
# worker died during this crawl). ARGV: worker id, now, stale-before time.
_FORGET_DEAD = """
if redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3]) > 0 then
  redis.call('SET', KEYS[5], 1)
end
"""
_JOIN = _FORGET_DEAD + """
local fresh = redis.call('ZCARD', KEYS[1]) == 0
if fresh then redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5]) end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[1])
return fresh and 1 or 0
"""
_LEAVE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[1])
""" + _FORGET_DEAD + """
if redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
  return 1
end
return 0
"""
# Whether this idle worker may stop: nothing queued and no other live worker busy.
_MAY_STOP = _FORGET_DEAD + """
redis.call('SREM', KEYS[2], ARGV[1])
if redis.call('ZCARD', KEYS[3]) > 0 then return 0 end
for _, other in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local beat = redis.call('ZSCORE', KEYS[1], other)
  if beat and tonumber(beat) >= tonumber(ARGV[3]) then return 0 end
end
return 1
"""


def shared_crawl_settings(redis_url: str) -> dict[str, object]:
    """The Scrapy settings that make a crawl one of several sharing REDIS_URL."""
    return {
        "SCHEDULER": "crawler.distributed.SharedScheduler",
        "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
        "SCHEDULER_QUEUE_CLASS": "scrapy_redis.queue.PriorityQueue",
        "SCHEDULER_QUEUE_KEY": KEY_PREFIX + ":requests",
        "SCHEDULER_DUPEFILTER_KEY": KEY_PREFIX + ":seen",
        "SCHEDULER_PERSIST": True,  # the last worker out clears them, not each one
        "REDIS_URL": redis_url,
    }


def _is_retry(request: Any) -> bool:
    # Scrapy's RetryMiddleware and our RetryAfterMiddleware both mark their retries.
    return bool(request.meta.get("retry_times") or request.meta.get("retry_after_tries"))


class SharedScheduler(Scheduler):
    """scrapy-redis's scheduler, plus the crawl's beginning and end (module docstring).

    Every request but a retry goes through the shared filter, whatever its dont_filter says:
    the spiders set dont_filter so that a single process never skips a page the database lacks;
    across processes, the filter is what splits the work. A retry's fingerprint is already in
    the filter, so it is queued without asking."""

    worker = ""
    crawler: Any = None

    @classmethod
    def from_crawler(cls, crawler: Any) -> SharedScheduler:
        scheduler = super().from_crawler(crawler)
        scheduler.crawler = crawler
        scheduler.worker = f"{process_name()}:{uuid.uuid4().hex[:6]}"
        crawler.signals.connect(scheduler._spider_idle, signal=signals.spider_idle)
        return scheduler

    def _keys(self) -> list[str]:
        base = KEY_PREFIX % {"spider": self.spider.name}
        return [f"{base}:workers", f"{base}:busy", self.queue.key, self.df.key, f"{base}:lost"]

    def _run(self, script: str) -> int:
        now = time.time()
        return int(self.server.eval(script, 5, *self._keys(), self.worker, now,
                                    now - STALE_SECONDS))

    def lost_a_worker(self) -> bool:
        """Whether a worker died during this crawl, taking requests it had begun with it. Its
        feeds' validators must not be kept then: the next crawl has to read those feeds again
        to find the articles that were lost, not be told 304 Not Modified."""
        return bool(self.server.exists(self._keys()[4]))

    def _forget_dead_neighbours(self) -> None:
        """Workers registered from this machine whose process is gone: they died (kill -9, a
        crash) without leaving. Forgotten at once rather than after STALE_SECONDS."""
        workers, busy, *_, lost = self._keys()
        for member in self.server.zrange(workers, 0, -1):
            name = member.decode() if isinstance(member, bytes) else member
            if name == self.worker or not process_ended(name):
                continue
            logger.warning("shared crawl: worker %s died without leaving; its unfinished pages "
                           "are left to the next crawl", name)
            self.server.pipeline().zrem(workers, name).srem(busy, name).set(lost, 1).execute()

    def open(self, spider: Any) -> None:
        super().open(spider)
        spider.shared_crawl = self  # for the store pipeline: lost_a_worker()
        self._forget_dead_neighbours()
        if self._run(_JOIN):
            logger.info("shared crawl of %s: starting a new crawl as %s", spider.name,
                        self.worker)
        else:
            logger.info("shared crawl of %s: joining a running crawl as %s (%d requests queued)",
                        spider.name, self.worker, len(self.queue))
        self._busy = True
        self._beat = task.LoopingCall(self._heartbeat)
        self._beat.start(HEARTBEAT_SECONDS, now=False)

    def _heartbeat(self) -> None:
        try:
            workers, busy = self._keys()[:2]
            pipe = self.server.pipeline()
            pipe.zadd(workers, {self.worker: time.time()})
            if self._busy:
                pipe.sadd(busy, self.worker)
            pipe.execute()
            # Requests other workers queued reach an idle engine now, not at its next
            # five-second heartbeat.
            if len(self.queue) and self.crawler.engine is not None:
                self.crawler.engine._slot.nextcall.schedule()
        except Exception as exc:  # a Redis hiccup: the next beat tries again
            logger.warning("shared crawl: heartbeat failed: %s", exc)

    def _spider_idle(self, spider: Any) -> None:
        self._busy = False
        self._forget_dead_neighbours()
        if not self._run(_MAY_STOP):
            raise DontCloseSpider

    def close(self, reason: str) -> None:
        if getattr(self, "_beat", None) is not None and self._beat.running:
            self._beat.stop()
        if self._run(_LEAVE):
            logger.info("shared crawl of %s: last worker out, crawl state cleared",
                        self.spider.name)

    def enqueue_request(self, request: Any) -> bool:
        if not _is_retry(request) and self.df.request_seen(request):
            self.df.log(request, self.spider)
            return False
        self.queue.push(request)
        if self.stats:
            self.stats.inc_value("scheduler/enqueued/redis")
        return True

    def next_request(self) -> Any:
        request = self.queue.pop(self.idle_before_close)
        if request is None:
            return None
        if self.stats:
            self.stats.inc_value("scheduler/dequeued/redis")
        if not self._busy:
            self._busy = True
            self.server.sadd(self._keys()[1], self.worker)
        return request
