"""`immunofeed run`: one long-running process that crawls each source on its interval, sends
the digests at the configured hour and merges the full-text index each night (APScheduler).

Each crawl runs as its own `immunofeed crawl --only ...` process (Scrapy's reactor runs once per
process, and a crawl that crashes must not take the scheduler with it), and so do the digests
and the night's `immunofeed db optimize`; the delivery records make a digest run that overlaps
a restart harmless.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select

from crawler.sources import SourceConfig, load_sources
from db import settings
from db.models import Source, utcnow
from db.session import session_scope

log = logging.getLogger("immunofeed.run")
CHECK_EVERY = timedelta(minutes=1)  # how often due sources are looked for
OPTIMIZE_AT = (3, 30)  # UTC hour and minute of the night's `immunofeed db optimize`


class ScheduleError(ValueError):
    """A scheduling setting that cannot be used."""


def digest_hour() -> int:
    raw = settings.get("DIGEST_HOUR")
    if not raw.isdecimal() or not 0 <= int(raw) <= 23:
        raise ScheduleError(f"IMMUNOFEED_DIGEST_HOUR must be an hour from 0 to 23, not {raw!r}")
    return int(raw)


def default_interval() -> int:
    raw = settings.get("CRAWL_INTERVAL")
    if not raw.isdecimal() or int(raw) < 1:
        raise ScheduleError(f"IMMUNOFEED_CRAWL_INTERVAL must be a whole number of minutes, at "
                            f"least 1, not {raw!r}")
    return int(raw)


def due_sources(url: str, sources: list[SourceConfig], now: datetime,
                interval: int) -> list[SourceConfig]:
    """The sources whose interval has passed since their last attempt (and that are not
    backing off after failures)."""
    with session_scope(url) as session:
        state = {name: (attempt, retry) for name, attempt, retry in session.execute(
            select(Source.name, Source.last_attempt_at, Source.next_attempt_at))}
    due = []
    for source in sources:
        attempt, retry = state.get(source.name, (None, None))
        every = timedelta(minutes=source.interval or interval)
        if (attempt is None or attempt + every <= now) and (retry is None or retry <= now):
            due.append(source)
    return due


class Runner:
    """The jobs `immunofeed run` schedules."""

    def __init__(self, url: str, sources_file: str | None,
                 overrides: tuple[str, ...] = ()) -> None:
        self.url = url
        self.sources_file = sources_file
        self.overrides = overrides
        self.interval = default_interval()

    def crawl_due(self) -> None:
        sources = load_sources(self.sources_file)
        due = due_sources(self.url, sources, utcnow(), self.interval)
        if not due:
            return
        names = [s.name for s in due]
        log.info("crawling %s", ", ".join(names))
        command = ["crawl"]
        if self.sources_file:
            command += ["--sources", str(Path(self.sources_file).resolve())]
        for name in names:
            command += ["--only", name]
        for override in self.overrides:
            command += ["--set", override]
        _immunofeed(command, "crawl:", "crawl exited with status")

    def optimize(self) -> None:
        _immunofeed(["db", "optimize"], "optimize:", "optimize exited with status")

    def send(self, frequency: str) -> None:
        # in its own process too: it forks its senders, which a process running the
        # scheduler's threads should not do
        _immunofeed(["digest", "send", "--frequency", frequency], frequency,
                    f"{frequency} digests: exit status")


def _immunofeed(arguments: list[str], label: str, failure: str) -> None:
    """Run `immunofeed ARGUMENTS` in a process of its own, log each line it wrote after LABEL,
    and, if it failed, FAILURE and its exit status."""
    done = subprocess.run([sys.executable, "-m", "webapp.cli", *arguments],
                          capture_output=True, text=True, check=False)
    for line in (done.stdout + done.stderr).strip().splitlines():
        log.info("%s %s", label, line)
    if done.returncode:
        log.warning("%s %s", failure, done.returncode)


def run_forever(url: str, sources_file: str | None, overrides: tuple[str, ...] = (),
                digests: bool = True) -> None:
    """Schedule the crawls and (unless DIGESTS is false) the digests, and run until
    interrupted."""
    hour = digest_hour()
    runner = Runner(url, sources_file, overrides)
    load_sources(sources_file)  # a broken sources file is reported now, not at the first crawl
    scheduler = BlockingScheduler(timezone="UTC")
    now = utcnow()
    scheduler.add_job(runner.crawl_due, "interval", seconds=CHECK_EVERY.total_seconds(),
                      next_run_time=now, max_instances=1, coalesce=True, id="crawl",
                      misfire_grace_time=None)
    if not digests:  # a crawler machine: another one sends the digests
        log.info("running: crawls every %d min by default, no digests", runner.interval)
        _start(scheduler)
        return
    # the site-wide jobs run on the machine that sends the digests
    scheduler.add_job(runner.optimize, CronTrigger(hour=OPTIMIZE_AT[0], minute=OPTIMIZE_AT[1],
                                                   timezone="UTC"),
                      max_instances=1, coalesce=True, misfire_grace_time=3600, id="optimize")
    daily = CronTrigger(hour=hour, minute=0, timezone="UTC")
    weekly = CronTrigger(day_of_week="mon", hour=hour, minute=0, timezone="UTC")
    scheduler.add_job(runner.send, daily, args=["daily"], max_instances=1, coalesce=True,
                      misfire_grace_time=3600, id="daily-digest")
    scheduler.add_job(runner.send, weekly, args=["weekly"], max_instances=1, coalesce=True,
                      misfire_grace_time=3600, id="weekly-digest")
    # started after today's hour (or this week's): catch up now; a period sent already is not
    # sent again
    # (misfire_grace_time=None: run however late the scheduler gets to them)
    if now.hour >= hour:
        scheduler.add_job(runner.send, args=["daily"], next_run_time=now, id="daily-catch-up",
                          misfire_grace_time=None)
    if now.weekday() > 0 or now.hour >= hour:
        scheduler.add_job(runner.send, args=["weekly"], next_run_time=now,
                          id="weekly-catch-up", misfire_grace_time=None)
    log.info("running: crawls every %d min by default, digests at %02d:00 UTC, the full-text "
             "index merged at %02d:%02d UTC", runner.interval, hour, *OPTIMIZE_AT)
    _start(scheduler)


def _start(scheduler: BlockingScheduler) -> None:
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        log.info("stopped")
