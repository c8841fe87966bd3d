"""Email digests: what is new for each subscriber's topics since their last digest, built into a
message and sent exactly once per (subscriber, period).

Exactly once: before a digest is built, a delivery row for (subscriber, period) is committed with
the window of items it covers and its Message-ID; it is marked sent as soon as the mail server
has accepted the message. A run killed at any moment and run again skips what is marked sent and
sends what is not, with the same window, content and Message-ID. The one moment left is between
the server's acceptance and that commit (a single local write): a digest caught there goes out
again with the same Message-ID, which mail stores recognise as the same message.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import queue
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from email.message import Message

import numpy as np
from markupsafe import Markup
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session, selectinload

from db.concepts import concepts_for_articles
from db.models import Article, DigestDelivery, Subscriber, utcnow
from db.search import matching_articles
from db.session import advisory_lock_key, get_engine, new_session, reset_after_fork
from db.subscriptions import record_bounce
from nlp.parallel import die_with_parent
from webapp.mail import (
    Envelope,
    PermanentFailure,
    SiteLinks,
    TemporaryFailure,
    add_list_headers,
    new_message,
    render,
    sender,
)
from webapp.topics import Topic, stored_topics

PERIOD = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}
# a digest never reaches further back than this, however long since the last one
LOOKBACK = {"daily": timedelta(days=3), "weekly": timedelta(days=14)}
ITEMS_PER_TOPIC = 5  # newest first; the section links to the rest on the site
ITEMS_PER_DIGEST = 20  # a digest is read in a few minutes
SUBSCRIBERS_PER_BATCH = 200
ARTICLE_CACHE = 20_000
TEMPORARY_FAILURES_BEFORE_STOP = 5  # in a row: the mail server is down, try next run
DONE = ("sent", "empty", "failed")


def period_key(frequency: str, when: datetime) -> str:
    """The period WHEN falls in: the UTC day for daily digests, the ISO week for weekly."""
    if frequency == "weekly":
        year, week, _ = when.isocalendar()
        return f"{year}-W{week:02d}"
    return when.date().isoformat()


@dataclass(frozen=True)
class DigestItem:
    article_id: int
    title: str
    url: str  # the article's page on the site
    source_url: str | None  # where it was first published
    source: str | None
    kind: str
    date: datetime | None
    summary: str
    tags: tuple[str, ...]
    text: str = ""  # the item as rendered in each part: once per article, not per digest
    html: Markup = Markup("")

    @property
    def meta(self) -> str:
        """Source, kind and date on one line."""
        parts = [self.source] if self.source else []
        parts.append(self.kind)
        if self.date:
            parts.append(self.date.strftime("%d %b %Y"))
        return " · ".join(parts)


@dataclass
class Section:
    topic: Topic
    items: list[DigestItem]
    more: int  # matching items left out (beyond ITEMS_PER_TOPIC)


@dataclass
class Digest:
    subscriber: Subscriber
    since: datetime
    until: datetime
    sections: list[Section]
    total: int = 0  # new items on the subscriber's topics, shown or not

    @property
    def count(self) -> int:
        """Items shown."""
        return sum(len(s.items) for s in self.sections)



class _Matches:
    """A topic's matching articles, most recently added first, as arrays (a run keeps one per
    topic: compact, and quick to cut at a subscriber's window start)."""

    def __init__(self, rows: list[tuple[int, datetime, datetime]]) -> None:
        self.ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
        self._added = np.fromiter((-row[1].timestamp() for row in rows), dtype=np.float64,
                                  count=len(rows))  # negated: ascending
        self._dates = np.fromiter((row[2].timestamp() for row in rows), dtype=np.float64,
                                  count=len(rows))

    def _end(self, since: datetime) -> int:
        return int(np.searchsorted(self._added, -since.timestamp(), side="left"))

    def added_after(self, since: datetime) -> np.ndarray:
        """Ids of those added after SINCE."""
        return self.ids[:self._end(since)]

    def newest(self, since: datetime, room: int, seen: set[int]) -> tuple[list[int], int]:
        """The ROOM most recently published of the ids added after SINCE and not in SEEN,
        and how many such there are."""
        end = self._end(since)
        ids, dates = self.ids[:end], self._dates[:end]
        if seen:
            keep = ~np.isin(ids, np.fromiter(seen, dtype=np.int64, count=len(seen)))
            ids, dates = ids[keep], dates[keep]
        unseen = len(ids)
        if room <= 0 or not unseen:
            return [], unseen
        if unseen > room:
            top = np.argpartition(-dates, room - 1)[:room]
            ids, dates = ids[top], dates[top]
        order = np.lexsort((-ids, -dates))  # newest first; on a tie, the later id first
        return ids[order].tolist(), unseen


class DigestBuilder:
    """Builds digests over one session, remembering each topic's matches and each article's
    rendering across subscribers (most share both)."""

    def __init__(self, session: Session, links: SiteLinks) -> None:
        self.session = session
        self.links = links
        self._topics: dict[tuple[str, datetime], _Matches] = {}
        self._items: OrderedDict[int, DigestItem] = OrderedDict()
        self._topic_of: dict[str, Topic | None] = {}

    def _matches(self, topic: Topic, since: datetime, until: datetime) -> _Matches:
        # one query per topic and window end, reaching back the longest look-back; each
        # subscriber then takes the newest part, after their own window start
        floor = until - max(LOOKBACK.values())
        key = (topic.key, until)
        found = self._topics.get(key)
        if found is None:
            found = self._topics[key] = _Matches(matching_articles(
                self.session, topic.params.parsed, topic.params.slugs,
                topic.filters(added_after=floor, added_until=until)))
        return found

    def _load(self, ids: list[int]) -> None:
        missing = [i for i in ids if i not in self._items]
        if missing:
            tags = concepts_for_articles(self.session, missing)
            for article in self.session.scalars(
                select(Article).where(Article.id.in_(missing))
                .options(selectinload(Article.source))
            ):
                item = DigestItem(
                    article_id=article.id, title=article.title,
                    url=self.links.url(f"/articles/{article.id}"),
                    source_url=article.url if article.url.lower().startswith(
                        ("http://", "https://")) else None,
                    source=article.source.name if article.source else None,
                    kind=article.kind, date=article.published_at or article.fetched_at,
                    summary=article.summary or "",
                    tags=tuple(c.name for c in tags.get(article.id, [])[:6]))
                self._items[article.id] = replace(
                    item, text=render("_item.txt", item=item),
                    html=Markup(render("_item.html", item=item)))
        for i in ids:
            if i in self._items:
                self._items.move_to_end(i)
        while len(self._items) > ARTICLE_CACHE:
            self._items.popitem(last=False)

    def _stored_topics(self, keys: list[str]) -> list[Topic]:
        for key in keys:
            if key not in self._topic_of:
                found = stored_topics(self.session, [key])
                self._topic_of[key] = found[0] if found else None
        return [topic for key in keys if (topic := self._topic_of[key]) is not None]

    def build(self, subscriber: Subscriber, since: datetime, until: datetime) -> Digest:
        """SUBSCRIBER's digest of items added after SINCE up to UNTIL, by topic; an item
        matching several topics is listed under the first only."""
        sections: list[Section] = []
        seen: set[int] = set()
        new: set[int] = set()
        for topic in self._stored_topics(subscriber.topics):
            matches = self._matches(topic, since, until)
            new.update(matches.added_after(since).tolist())
            room = min(ITEMS_PER_TOPIC, ITEMS_PER_DIGEST - len(seen))
            shown, unseen = matches.newest(since, room, seen)
            if not unseen:
                continue
            self._load(shown)
            seen.update(shown)
            items = [self._items[i] for i in shown if i in self._items]
            items.sort(key=lambda item: item.date or until, reverse=True)  # newest first
            sections.append(Section(topic, items, unseen - len(shown)))
        return Digest(subscriber, since, until, sections, len(new))


def compose(digest: Digest, links: SiteLinks, frequency: str,
            message_id: str | None = None) -> Message:
    """The digest as a multipart/alternative message with its list headers."""
    subscriber = digest.subscriber
    unsubscribe_token = links.signer.unsubscribe_token(subscriber.id, subscriber.key)
    context = {
        "digest": digest,
        "frequency": frequency,
        "manage_url": links.manage(subscriber.id, subscriber.key),
        "unsubscribe_url": links.url("/unsubscribe/" + unsubscribe_token),
        "site_url": links.url("/"),
        "topic_url": lambda topic: links.url(topic.path),
    }
    names = [s.topic.title for s in digest.sections]
    about = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    subject = (f"ImmunoFeed {frequency} digest: {digest.total} new "
               f"{'item' if digest.total == 1 else 'items'} on {about}")
    message = new_message(subscriber.email, subject, render("digest.txt", **context),
                          render("digest.html", **context), message_id=message_id)
    add_list_headers(message, context["unsubscribe_url"], unsubscribe_token)
    return message


@dataclass
class SendReport:
    sent: int = 0
    empty: int = 0
    failed: int = 0  # refused for good (counted against the subscriber)
    deferred: int = 0  # the server asked to try later: left for the next run
    skipped: int = 0  # already done this period
    stopped: str | None = None  # why the run stopped early

    def merge(self, other: SendReport) -> None:
        for name in ("sent", "empty", "failed", "deferred", "skipped"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.stopped = self.stopped or other.stopped

    def line(self) -> str:
        parts = [f"{self.sent} sent", f"{self.empty} empty (not sent)",
                 f"{self.skipped} already done this period"]
        if self.failed:
            parts.append(f"{self.failed} refused by the mail server")
        if self.deferred:
            parts.append(f"{self.deferred} deferred to the next run")
        return "digests: " + ", ".join(parts)


def _message_id(frequency: str, period: str, subscriber_id: int) -> str:
    """The same for every attempt at one subscriber's digest of one period."""
    _, address = sender()
    return f"<digest.{frequency}.{period}.{subscriber_id}@{address.rpartition('@')[2]}>"


def _due_batches(url: str, frequency: str, share: tuple[int, int] = (0, 1)
                 ) -> Iterator[list[int]]:
    """Ids of active subscribers on FREQUENCY, a batch at a time, in id order; with SHARE
    (k, n), only those whose id is k modulo n."""
    last = 0
    k, n = share
    while True:
        with new_session(url) as session:
            stmt = select(Subscriber.id).where(Subscriber.status == "active",
                                               Subscriber.frequency == frequency,
                                               Subscriber.id > last)
            if n > 1:
                stmt = stmt.where(Subscriber.id % n == k)
            ids = list(session.scalars(stmt.order_by(Subscriber.id)
                                       .limit(SUBSCRIBERS_PER_BATCH)))
        if not ids:
            return
        yield ids
        last = ids[-1]


def _previous_until(session: Session, ids: list[int]) -> dict[int, datetime]:
    """For each subscriber, where their last digest's window ended."""
    return dict(session.execute(
        select(DigestDelivery.subscriber_id, func.max(DigestDelivery.until))
        .where(DigestDelivery.subscriber_id.in_(ids), DigestDelivery.status.in_(("sent", "empty")))
        .group_by(DigestDelivery.subscriber_id)).all())


def window_start(frequency: str, now: datetime, previous: datetime | None) -> datetime:
    """Where a digest made NOW starts: where the last one ended (PREVIOUS) or, for a first
    digest, one period back; never further back than the look-back."""
    return max(previous or now - PERIOD[frequency], now - LOOKBACK[frequency])


def _planned(session: Session, subscribers: list[Subscriber], frequency: str, period: str,
             now: datetime) -> tuple[dict[int, DigestDelivery], list[dict[str, object]]]:
    """This period's delivery for each of SUBSCRIBERS: the rows that exist, and the rows to
    make for the others (pending, with the window of items they cover and their Message-ID)."""
    ids = [s.id for s in subscribers]
    found = {d.subscriber_id: d for d in session.scalars(select(DigestDelivery).where(
        DigestDelivery.subscriber_id.in_(ids), DigestDelivery.period == period))}
    missing = [sid for sid in ids if sid not in found]
    previous = _previous_until(session, missing) if missing else {}
    rows = [{"subscriber_id": sid, "period": period, "status": "pending",
             "since": window_start(frequency, now, previous.get(sid)), "until": now,
             "message_id": _message_id(frequency, period, sid), "created_at": now,
             "items": 0, "attempts": 0} for sid in missing]
    for row in rows:
        found[row["subscriber_id"]] = DigestDelivery(**row)  # type: ignore[arg-type]
    return found, rows


@dataclass
class _Send:
    subscriber_id: int
    envelope: Envelope
    items: int


class _Recorder(threading.Thread):
    """Sends the messages and records every outcome, in the order they are queued, on its own
    connection: the only writer of the run. A delivery row is committed before its message is
    sent, and marked sent the moment the server has accepted it.

    The thread that builds the digests goes on building while this one waits for the mail
    server; the queue is short, so memory stays flat."""

    def __init__(self, url: str, period: str, mailer, report: SendReport) -> None:  # noqa: ANN001
        super().__init__(name="digest-sender", daemon=True)
        self.url, self.period, self.mailer, self.report = url, period, mailer, report
        self.queue: queue.Queue[object] = queue.Queue(maxsize=8)
        self.failure: BaseException | None = None
        self.stop = threading.Event()  # set when the run should end early
        self._failures_in_a_row = 0

    def run(self) -> None:
        try:
            with new_session(self.url) as session:
                while (job := self.queue.get()) is not None:
                    if not self.stop.is_set():
                        self._handle(session, job)
        except BaseException as exc:  # noqa: BLE001 - handed to the building thread
            self.failure = exc
            self.stop.set()
            while self.queue.get() is not None:  # let the builder finish putting
                pass

    def _update(self, session: Session, subscriber_id: int, **values: object) -> None:
        table = DigestDelivery.__table__
        session.connection().execute(
            table.update().where(table.c.subscriber_id == subscriber_id,
                                 table.c.period == self.period).values(**values))

    def _handle(self, session: Session, job: object) -> None:
        if isinstance(job, list):  # new delivery rows
            session.execute(_insert_new(session), job)
            session.commit()
            return
        if isinstance(job, int):  # an empty digest
            self._update(session, job, status="empty")
            session.commit()
            return
        assert isinstance(job, _Send)
        attempts = DigestDelivery.__table__.c.attempts + 1
        try:
            self.mailer.send_envelope(job.envelope)
        except TemporaryFailure as exc:
            self._update(session, job.subscriber_id, attempts=attempts, error=str(exc)[:1000])
            session.commit()
            self.report.deferred += 1
            self._failures_in_a_row += 1
            if self._failures_in_a_row >= TEMPORARY_FAILURES_BEFORE_STOP:
                self.report.stopped = (f"the mail server keeps failing ({exc}); the rest "
                                       "wait for the next run")
                self.stop.set()
            return
        except PermanentFailure as exc:
            self._update(session, job.subscriber_id, status="failed", attempts=attempts,
                         error=str(exc)[:1000])
            subscriber = session.get(Subscriber, job.subscriber_id)
            if subscriber is not None:
                record_bounce(subscriber, str(exc))
            session.commit()
            self.report.failed += 1
            self._failures_in_a_row = 0
            return
        self._update(session, job.subscriber_id, status="sent", sent_at=utcnow(),
                     attempts=attempts, items=job.items, error=None)
        session.commit()
        self.report.sent += 1
        self._failures_in_a_row = 0


def _insert_new(session: Session):  # noqa: ANN202
    """INSERT of delivery rows that leaves alone those another run made meanwhile."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(DigestDelivery).on_conflict_do_nothing()
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(DigestDelivery).on_conflict_do_nothing()
    return insert(DigestDelivery)


class AlreadySending(RuntimeError):
    """Another run sending the same digests holds the lock."""


@contextmanager
def one_run_at_a_time(url: str, frequency: str) -> Iterator[None]:
    """Hold, for a whole run, the lock that keeps two runs sending FREQUENCY digests from the
    same database from working at once (each would take the other's pending deliveries for
    ones a killed run left, and send them again). A session advisory lock on PostgreSQL, which
    works across machines; an exclusive lock on a file beside the database on SQLite. Both go
    with the process if it dies. Raises AlreadySending when another run holds it."""
    engine = get_engine(url)
    name = f"immunofeed digest send {frequency}"
    if engine.dialect.name == "postgresql":
        key = advisory_lock_key(name)
        with engine.connect() as connection:
            if not connection.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}):
                raise AlreadySending(name)
            connection.commit()
            try:
                yield
            finally:
                connection.scalar(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                connection.commit()
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with open(f"{database}.digest-{frequency}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlreadySending(name) from None
        yield


def send_digests(url: str, frequency: str, links: SiteLinks, mailer, *,  # noqa: ANN001
                 now: datetime | None = None, dry_run: bool = False, jobs: int = 1
                 ) -> SendReport:
    """Send this period's digest to every active FREQUENCY subscriber that has not had it.

    With JOBS > 1 the subscribers are split between that many forked processes, each with its
    own connection to the mail server (MAILER is copied into each, unconnected). With DRY_RUN,
    build every due digest and count them, recording and sending nothing."""
    now = now or utcnow()
    if jobs <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return _send_share(url, frequency, links, mailer, now, dry_run, (0, 1))
    context = multiprocessing.get_context("fork")
    pipes, workers = [], []
    for k in range(jobs):
        reader, writer = context.Pipe(duplex=False)
        worker = context.Process(target=_worker, name=f"digest-{k}", daemon=True, args=(
            writer, url, frequency, links, mailer, now, dry_run, (k, jobs)))
        worker.start()
        writer.close()
        pipes.append(reader)
        workers.append(worker)
    report, failure = SendReport(), None
    for reader, worker in zip(pipes, workers, strict=True):
        try:
            kind, value = reader.recv()
        except EOFError:
            kind, value = "error", RuntimeError(f"{worker.name} ended without a report "
                                                f"(exit status {worker.exitcode})")
        worker.join()
        if kind == "error":
            failure = failure or value
        else:
            report.merge(value)
    if failure is not None:
        raise failure
    return report


def _worker(pipe, url: str, frequency: str, links: SiteLinks, mailer,  # noqa: ANN001
            now: datetime, dry_run: bool, share: tuple[int, int]) -> None:
    """One process's share of a run (forked): its report, or its exception, goes back up
    PIPE. It dies with its parent, so a killed run leaves no sender behind."""
    die_with_parent()
    reset_after_fork()
    try:
        pipe.send(("report", _send_share(url, frequency, links, mailer, now, dry_run, share)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        pipe.send(("error", exc))
    finally:
        pipe.close()


def _send_share(url: str, frequency: str, links: SiteLinks, mailer, now: datetime,  # noqa: ANN001
                dry_run: bool, share: tuple[int, int]) -> SendReport:
    period = period_key(frequency, now)
    report = SendReport()
    recorder = None if dry_run else _Recorder(url, period, mailer, report)
    if recorder is not None:
        recorder.start()
    # the sender thread waits on the mail server; hand it the interpreter sooner once the
    # answer is in (Python's default, 5 ms, is longer than a message takes)
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    builder: DigestBuilder | None = None
    try:
        for ids in _due_batches(url, frequency, share):
            if recorder is not None and recorder.stop.is_set():
                break
            # this thread only reads; the recorder writes
            with new_session(url) as session:
                if builder is None:
                    builder = DigestBuilder(session, links)
                builder.session = session  # its caches hold plain data: they outlive sessions
                subscribers = list(session.scalars(
                    select(Subscriber).where(Subscriber.id.in_(ids)).order_by(Subscriber.id)))
                deliveries, new_rows = _planned(session, subscribers, frequency, period, now)
                if recorder is not None and new_rows:
                    recorder.queue.put(new_rows)
                for subscriber in subscribers:
                    if recorder is not None and recorder.stop.is_set():
                        break
                    delivery = deliveries[subscriber.id]
                    if delivery.status in DONE:
                        report.skipped += 1
                        continue
                    digest = builder.build(subscriber, delivery.since, delivery.until)
                    if recorder is None:  # dry run
                        if digest.count:
                            report.sent += 1
                        else:
                            report.empty += 1
                        continue
                    if not digest.count:
                        recorder.queue.put(subscriber.id)
                        report.empty += 1
                        continue
                    message = compose(digest, links, frequency, delivery.message_id)
                    recorder.queue.put(_Send(subscriber.id, Envelope.of(message), digest.count))
    finally:
        sys.setswitchinterval(old_interval)
        if recorder is not None:
            recorder.queue.put(None)
            recorder.join()
    if recorder is not None and recorder.failure is not None:
        raise recorder.failure
    return report


def preview(session: Session, subscriber: Subscriber, links: SiteLinks,
            now: datetime | None = None) -> tuple[Digest, Message]:
    """SUBSCRIBER's next digest as it would be sent now (nothing recorded)."""
    now = now or utcnow()
    frequency = subscriber.frequency
    previous = _previous_until(session, [subscriber.id]).get(subscriber.id)
    digest = DigestBuilder(session, links).build(
        subscriber, window_start(frequency, now, previous), now)
    return digest, compose(digest, links, frequency)
