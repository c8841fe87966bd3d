"""Digest subscribers: confirmed subscriptions, their changes, bounces, the per-address limit on
confirmation emails, and the site's signing key."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from db import settings
from db.models import AppSecret, ConfirmationSend, Subscriber, utcnow
from db.session import session_scope

CONFIRMATIONS_PER_ADDRESS = 3  # confirmation emails to one address...
CONFIRMATION_WINDOW = timedelta(hours=24)  # ...within this long
BOUNCES_BEFORE_PAUSE = 3
SECRET_NAME = "signing-key"


def secret_key(session: Session) -> str:
    """IMMUNOFEED_SECRET_KEY, or a random key made on first use and kept in the database, so
    that the web workers and `immunofeed digest send` sign and check links alike."""
    configured = settings.get("SECRET_KEY")
    if configured:
        return configured
    found = session.get(AppSecret, SECRET_NAME)
    if found is not None:
        return found.value
    try:
        with session.begin_nested():
            session.add(AppSecret(name=SECRET_NAME, value=secrets.token_urlsafe(48)))
    except IntegrityError:  # another process made it first
        pass
    except OperationalError:
        # SQLite: a transaction that has read may not start writing while another process
        # writes, nor once another has written since it began ("database is locked"): make the
        # key, or read the one just made, in a transaction of its own that waits for the lock
        bind = session.get_bind()
        if bind.dialect.name != "sqlite":
            raise
        url = bind.engine.url.render_as_string(hide_password=False)
        with session_scope(url, writer=True) as fresh:
            made = fresh.get(AppSecret, SECRET_NAME)
            if made is None:
                made = AppSecret(name=SECRET_NAME, value=secrets.token_urlsafe(48))
                fresh.add(made)
            return made.value
    return session.get(AppSecret, SECRET_NAME).value  # type: ignore[union-attr]


def address_hash(session: Session, email: str) -> str:
    """A keyed hash of EMAIL: enough to count confirmation emails without keeping addresses
    of people who never confirmed."""
    key = secret_key(session).encode()
    return hmac.new(key, email.encode(), hashlib.sha256).hexdigest()


def may_send_confirmation(session: Session, email: str, now: datetime | None = None) -> bool:
    """Record a confirmation email to EMAIL and say whether it may go out: at most
    CONFIRMATIONS_PER_ADDRESS a day, so the form cannot be used to flood someone's inbox."""
    now = now or utcnow()
    digest = address_hash(session, email)
    session.execute(delete(ConfirmationSend).where(
        ConfirmationSend.sent_at < now - CONFIRMATION_WINDOW))
    recent = session.scalar(select(func.count()).select_from(ConfirmationSend).where(
        ConfirmationSend.address_hash == digest)) or 0
    if recent >= CONFIRMATIONS_PER_ADDRESS:
        return False
    session.add(ConfirmationSend(address_hash=digest, sent_at=now))
    session.flush()
    return True


def confirm_subscription(session: Session, email: str, topics: list[str],
                         frequency: str) -> Subscriber:
    """Create EMAIL's subscription, or replace its topics and frequency (and resume it):
    called only when the address's owner has followed a confirmation link."""
    subscriber = find_subscriber(session, email)
    now = utcnow()
    if subscriber is None:
        subscriber = Subscriber(email=email, topics=topics, frequency=frequency, status="active",
                                key=secrets.token_urlsafe(24), created_at=now, confirmed_at=now,
                                bounces=0)
        session.add(subscriber)
    else:
        subscriber.topics = topics
        subscriber.frequency = frequency
        subscriber.status = "active"
        subscriber.paused_reason = None
        subscriber.confirmed_at = now
        subscriber.bounces = 0
    session.flush()
    return subscriber


def find_subscriber(session: Session, email: str) -> Subscriber | None:
    return session.scalar(select(Subscriber).where(Subscriber.email == email))


def subscriber_by_key(session: Session, subscriber_id: int, key: str) -> Subscriber | None:
    """The subscriber a signed link names, if its key still matches."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or not hmac.compare_digest(subscriber.key, key):
        return None
    return subscriber


def unsubscribe(subscriber: Subscriber) -> None:
    subscriber.status = "unsubscribed"
    subscriber.paused_reason = None


def record_bounce(subscriber: Subscriber, error: str) -> None:
    """A permanent failure delivering to SUBSCRIBER; repeated ones pause them."""
    subscriber.bounces += 1
    subscriber.last_error = error[:1000]
    if subscriber.bounces >= BOUNCES_BEFORE_PAUSE and subscriber.status == "active":
        subscriber.status = "paused"
        subscriber.paused_reason = "bounces"
