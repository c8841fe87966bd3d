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

from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from db.concepts import concepts_for_articles
from db.models import Article, DigestDelivery, Subscriber, utcnow
from db.search import matching_articles
from db.session import new_session
from db.subscriptions import record_bounce
from webapp.mail import (
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
ITEMS_PER_TOPIC = 10
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

    @property
    def count(self) -> int:
        return sum(len(s.items) for s in self.sections)


class DigestBuilder:
    """Builds digests over one session, remembering each topic's matches and each article's
    rendering across subscribers (most share both)."""

    def __init__(self, session: Session, links: SiteLinks) -> None:
        self.session = session
        self.links = links
        self._topics: dict[tuple[str, datetime, datetime], list[tuple[int, datetime]]] = {}
        self._items: OrderedDict[int, DigestItem] = OrderedDict()

    def _matches(self, topic: Topic, since: datetime, until: datetime) -> list[int]:
        # one query per topic and window start, bounded by the longest look-back
        floor = until - max(LOOKBACK.values())
        key = (topic.key, floor, until)
        found = self._topics.get(key)
        if found is None:
            found = self._topics[key] = matching_articles(
                self.session, topic.params.parsed, topic.params.slugs,
                topic.filters(added_after=floor, added_until=until))
        return [article_id for article_id, added in found if added > since]

    def _load(self, ids: list[int]) -> None:
        missing = [i for i in ids if i not in self._items]
        if missing:
            tags = concepts_for_articles(self.session, missing)
            for article in self.session.scalars(
                select(Article).where(Article.id.in_(missing))
                .options(selectinload(Article.source))
            ):
                self._items[article.id] = DigestItem(
                    article_id=article.id, title=article.title,
                    url=self.links.url(f"/articles/{article.id}"),
                    source_url=article.url if article.url.lower().startswith(
                        ("http://", "https://")) else None,
                    source=article.source.name if article.source else None,
                    kind=article.kind, date=article.published_at or article.fetched_at,
                    summary=article.summary or "",
                    tags=tuple(c.name for c in tags.get(article.id, [])[:6]))
        for i in ids:
            if i in self._items:
                self._items.move_to_end(i)
        while len(self._items) > ARTICLE_CACHE:
            self._items.popitem(last=False)

    def build(self, subscriber: Subscriber, since: datetime, until: datetime) -> Digest:
        """SUBSCRIBER's digest of items added after SINCE up to UNTIL, by topic; an item
        matching several topics is listed under the first only."""
        sections: list[Section] = []
        seen: set[int] = set()
        for topic in stored_topics(self.session, subscriber.topics):
            ids = [i for i in self._matches(topic, since, until) if i not in seen]
            shown = ids[:ITEMS_PER_TOPIC]
            if shown:
                self._load(shown)
                seen.update(shown)
                items = [self._items[i] for i in shown if i in self._items]
                items.sort(key=lambda item: item.date or until, reverse=True)  # newest first
                sections.append(Section(topic, items, len(ids) - len(shown)))
        return Digest(subscriber, since, until, sections)


def compose(digest: Digest, links: SiteLinks, frequency: str,
            message_id: str | None = None) -> EmailMessage:
    """The digest as a multipart/alternative message with its list headers."""
    subscriber = digest.subscriber
    unsubscribe_token = links.signer.unsubscribe_token(subscriber.id, subscriber.key)
    context = {
        "digest": digest,
        "frequency": frequency,
        "manage_url": links.manage(subscriber.id, subscriber.key),
        "unsubscribe_url": links.unsubscribe(subscriber.id, subscriber.key),
        "site_url": links.url("/"),
        "topic_url": lambda topic: links.url(topic.path),
    }
    names = [s.topic.title for s in digest.sections]
    about = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    subject = (f"ImmunoFeed {frequency} digest: {digest.count} new "
               f"{'item' if digest.count == 1 else 'items'} on {about}")
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
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        parts = [f"{self.sent} sent", f"{self.empty} empty (not sent)",
                 f"{self.skipped} already done this period"]
        if self.failed:
            parts.append(f"{self.failed} refused by the mail server")
        if self.deferred:
            parts.append(f"{self.deferred} deferred to the next run")
        return "digests: " + ", ".join(parts)


def _message_id(frequency: str, period: str, subscriber_id: int, delivery_id: int) -> str:
    _, address = sender()
    return f"<digest.{frequency}.{period}.{subscriber_id}.{delivery_id}@" \
           f"{address.rpartition('@')[2]}>"


def _due_batches(url: str, frequency: str) -> Iterator[list[int]]:
    """Ids of active subscribers on FREQUENCY, a batch at a time, in id order."""
    last = 0
    while True:
        with new_session(url) as session:
            ids = list(session.scalars(
                select(Subscriber.id).where(Subscriber.status == "active",
                                            Subscriber.frequency == frequency,
                                            Subscriber.id > last)
                .order_by(Subscriber.id).limit(SUBSCRIBERS_PER_BATCH)))
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


def _delivery(session: Session, subscriber: Subscriber, frequency: str, period: str,
              now: datetime, previous: datetime | None) -> DigestDelivery | None:
    """This period's delivery row for SUBSCRIBER, committed before anything is sent; None if
    the period's digest is done (or another run is making it)."""
    found = session.scalar(select(DigestDelivery).where(
        DigestDelivery.subscriber_id == subscriber.id, DigestDelivery.period == period))
    if found is not None:
        return None if found.status in DONE else found
    delivery = DigestDelivery(subscriber_id=subscriber.id, period=period,
                              since=window_start(frequency, now, previous),
                              until=now, status="pending", message_id="", created_at=now)
    try:
        with session.begin_nested():
            session.add(delivery)
            session.flush()
            delivery.message_id = _message_id(frequency, period, subscriber.id, delivery.id)
            session.flush()
    except IntegrityError:
        return None
    session.commit()
    return delivery


def send_digests(url: str, frequency: str, links: SiteLinks, mailer, *,  # noqa: ANN001
                 now: datetime | None = None, dry_run: bool = False,
                 progress: Callable[[int], None] | None = None) -> SendReport:
    """Send this period's digest to every active FREQUENCY subscriber that has not had it.

    With DRY_RUN, build every due digest and count them, recording and sending nothing."""
    now = now or utcnow()
    period = period_key(frequency, now)
    report = SendReport()
    failures_in_a_row = 0
    for ids in _due_batches(url, frequency):
        with new_session(url) as session:
            builder = DigestBuilder(session, links)
            previous = _previous_until(session, ids)
            subscribers = session.scalars(select(Subscriber).where(Subscriber.id.in_(ids))
                                          .order_by(Subscriber.id)).all()
            for subscriber in subscribers:
                if progress:
                    progress(1)
                if dry_run:
                    done = session.scalar(select(DigestDelivery.status).where(
                        DigestDelivery.subscriber_id == subscriber.id,
                        DigestDelivery.period == period))
                    if done in DONE:
                        report.skipped += 1
                        continue
                    since = window_start(frequency, now, previous.get(subscriber.id))
                    digest = builder.build(subscriber, since, now)
                    if digest.count:
                        report.sent += 1
                    else:
                        report.empty += 1
                    continue
                delivery = _delivery(session, subscriber, frequency, period, now,
                                     previous.get(subscriber.id))
                if delivery is None:
                    report.skipped += 1
                    continue
                digest = builder.build(subscriber, delivery.since, delivery.until)
                if not digest.count:
                    delivery.status = "empty"
                    session.commit()
                    report.empty += 1
                    continue
                message = compose(digest, links, frequency, delivery.message_id)
                try:
                    mailer.send(message)
                except TemporaryFailure as exc:
                    delivery.attempts += 1
                    delivery.error = str(exc)[:1000]
                    session.commit()
                    report.deferred += 1
                    failures_in_a_row += 1
                    if failures_in_a_row >= TEMPORARY_FAILURES_BEFORE_STOP:
                        report.stopped = f"the mail server keeps failing ({exc}); the rest " \
                                         "wait for the next run"
                        return report
                    continue
                except PermanentFailure as exc:
                    delivery.status = "failed"
                    delivery.attempts += 1
                    delivery.error = str(exc)[:1000]
                    record_bounce(subscriber, str(exc))
                    session.commit()
                    report.failed += 1
                    failures_in_a_row = 0
                    continue
                delivery.status = "sent"
                delivery.sent_at = utcnow()
                delivery.attempts += 1
                delivery.items = digest.count
                session.commit()
                report.sent += 1
                failures_in_a_row = 0
    return report


def preview(session: Session, subscriber: Subscriber, links: SiteLinks,
            now: datetime | None = None) -> tuple[Digest, EmailMessage]:
    """SUBSCRIBER's next digest as it would be sent now (nothing recorded)."""
    now = now or utcnow()
    frequency = subscriber.frequency
    previous = _previous_until(session, [subscriber.id]).get(subscriber.id)
    digest = DigestBuilder(session, links).build(
        subscriber, window_start(frequency, now, previous), now)
    return digest, compose(digest, links, frequency)
