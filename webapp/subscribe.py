"""Digest subscriptions on the site: the subscribe form, the confirmation link, the manage page
and unsubscribing (a visible link and RFC 8058 one-click POST). The JSON endpoint
(POST /api/v1/subscriptions) shares request_subscription() with the form."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email
from flask import Blueprint, Response, abort, current_app, render_template, request
from flask.sessions import SecureCookieSessionInterface
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect
from itsdangerous import SignatureExpired
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from db.models import FREQUENCIES, Subscriber
from db.session import session_scope
from db.subscriptions import (
    confirm_subscription,
    may_send_confirmation,
    secret_key,
    subscriber_by_key,
    unsubscribe,
)
from webapp.app import db_session
from webapp.mail import (
    LinkSigner,
    MailConfigError,
    MailError,
    OutboxMailer,
    SiteLinks,
    SmtpConfig,
    SmtpMailer,
    new_message,
    render,
)
from webapp.topics import Topic, TopicError, parse_topics, stored_topics

bp = Blueprint("subscribe", __name__)
csrf = CSRFProtect()
# counters in Redis when IMMUNOFEED_REDIS_URL is set, so every web worker shares them; in this
# process's memory otherwise, and as the fallback while Redis cannot be reached
limiter = Limiter(get_remote_address, in_memory_fallback_enabled=True)
SUBSCRIBE_LIMIT = "5 per minute; 30 per day"  # per client address
MAX_EMAIL_CHARS = 320
ACCEPTED = ("If that address can receive email, a confirmation link is on its way. The digest "
            "starts once the link is followed.")


class SubscriptionError(ValueError):
    """A request the reader can fix; the message says how."""


@dataclass(frozen=True)
class Request:
    email: str
    topics: list[Topic]
    frequency: str


def normalise_email(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise SubscriptionError("Enter an email address.")
    if len(raw) > MAX_EMAIL_CHARS:
        raise SubscriptionError("That email address is too long.")
    try:
        address = validate_email(raw.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise SubscriptionError(f"That is not a usable email address: {exc}") from None
    # one subscription per mailbox: mail systems treat the local part without regard to case
    return address.lower()


def _check_frequency(frequency: object) -> None:
    if frequency not in FREQUENCIES:
        raise SubscriptionError(f"frequency must be one of {', '.join(FREQUENCIES)}.")


def read_request(session: Session, email: object, topics: object,
                 frequency: object) -> Request:
    """Validate a subscription request from the form or the API."""
    address = normalise_email(email)
    _check_frequency(frequency)
    if not isinstance(topics, list):
        raise SubscriptionError("topics must be a list of concept slugs or search URLs.")
    try:
        parsed = parse_topics(session, topics)
    except TopicError as exc:
        raise SubscriptionError(f"Topics: {exc}.") from None
    return Request(address, parsed, str(frequency))


def site_links(session: Session) -> SiteLinks:
    base = current_app.config.get("BASE_URL") or request.host_url
    return SiteLinks(base, LinkSigner(secret_key(session)))


def mailer():  # -> SmtpMailer | OutboxMailer
    """The app's mail transport: a quick one (one retry), since a reader is waiting."""
    url = current_app.config.get("SMTP_URL") or ""
    if not url:
        return OutboxMailer(current_app.config.get("OUTBOX") or OutboxMailer().folder)
    return SmtpMailer(SmtpConfig.from_url(url), retries=1, backoff=0.5)


def request_subscription(session: Session, wanted: Request) -> None:
    """Email WANTED's address a link that starts (or changes) its digest. Answers the same
    whether or not the address is subscribed; past the per-address limit nothing is sent."""
    if not may_send_confirmation(session, wanted.email):
        return
    links = site_links(session)
    keys = [t.key for t in wanted.topics]
    context = {"topics": wanted.topics, "frequency": wanted.frequency, "site_url": links.url("/"),
               "confirm_url": links.confirm(wanted.email, keys, wanted.frequency)}
    message = new_message(wanted.email, "Confirm your ImmunoFeed digest",
                          render("confirm.txt", **context), render("confirm.html", **context))
    try:
        with mailer() as transport:
            transport.send(message)
    except (MailError, MailConfigError) as exc:
        session.rollback()  # not sent: does not count against the address
        current_app.logger.error("confirmation email not sent: %s", exc)
        abort(503, description="The confirmation email could not be sent just now. "
                               "Please try again in a few minutes.")


# -- the form ----------------------------------------------------------------------------------

def _form(status: int = 200, **context: object) -> tuple[str, int]:
    _need_signing_key()
    return render_template("subscribe.html", frequencies=FREQUENCIES, **context), status


def _need_signing_key() -> None:
    """Forms carry a signed token: without the key (a database that cannot be written to
    make one) they cannot be offered."""
    if not current_app.secret_key:
        abort(503, description="Email subscriptions are not available right now. Please try "
                               "again later.")


@bp.get("/subscribe")
def subscribe_form() -> tuple[str, int]:
    session = db_session()
    raw = request.args.getlist("topic")
    try:
        topics = parse_topics(session, raw) if raw else []
    except TopicError as exc:
        return _form(400, topics=[], error=f"Topics: {exc}.")
    return _form(topics=topics, frequency="daily")


@bp.post("/subscribe")
@limiter.limit(SUBSCRIBE_LIMIT)
def subscribe_post() -> tuple[str, int]:
    session = db_session()
    raw_topics = [t for t in request.form.getlist("topic") if t.strip()]
    frequency = request.form.get("frequency", "daily")
    try:
        wanted = read_request(session, request.form.get("email", ""), raw_topics, frequency)
    except SubscriptionError as exc:
        try:
            shown = parse_topics(session, raw_topics) if raw_topics else []
        except TopicError:
            shown = []
        return _form(400, topics=shown, frequency=frequency, error=str(exc),
                     email=request.form.get("email", "")[:MAX_EMAIL_CHARS])
    request_subscription(session, wanted)
    return render_template("subscribe_sent.html", message=ACCEPTED), 200


# -- confirm, manage, unsubscribe --------------------------------------------------------------

def _signer(session: Session) -> LinkSigner:
    return LinkSigner(secret_key(session))


@bp.get("/subscribe/confirm/<token>")
def confirm(token: str) -> str:
    session = db_session()
    try:
        data = _signer(session).read_confirm(token)
    except SignatureExpired:
        abort(410, description="This confirmation link has expired. Subscribe again to get a "
                               "new one.")
    if not data:
        abort(404, description="This confirmation link is not valid.")
    try:
        wanted = read_request(session, data.get("e"), data.get("t"), data.get("f"))
    except SubscriptionError:
        abort(410, description="This confirmation link names topics that no longer exist. "
                               "Subscribe again.")
    subscriber = confirm_subscription(session, wanted.email, [t.key for t in wanted.topics],
                                      wanted.frequency)
    links = site_links(session)
    return render_template("subscription.html", subscriber=subscriber, topics=wanted.topics,
                           frequencies=FREQUENCIES, confirmed=True,
                           token=links.signer.manage_token(subscriber.id, subscriber.key))


def _subscriber_of(token: str, read: Callable[[LinkSigner, str], tuple[int, str] | None],
                   invalid: str) -> Subscriber:
    """The subscriber a signed link's TOKEN names (READ checks it is a link of its kind), or a
    404 saying INVALID."""
    session = db_session()
    found = read(_signer(session), token)
    subscriber = subscriber_by_key(session, *found) if found else None
    if subscriber is None:
        abort(404, description=invalid)
    return subscriber


def _managed(token: str) -> Subscriber:
    return _subscriber_of(token, LinkSigner.read_manage,
                          "This link is not valid (or the subscription no longer exists).")


@bp.get("/subscriptions/<token>")
def manage(token: str) -> str:
    subscriber = _managed(token)
    _need_signing_key()
    return render_template("subscription.html", subscriber=subscriber, token=token,
                           topics=stored_topics(db_session(), subscriber.topics),
                           frequencies=FREQUENCIES)


@bp.post("/subscriptions/<token>")
@limiter.limit("30 per minute")
def manage_post(token: str) -> tuple[str, int]:
    session = db_session()
    subscriber = _managed(token)
    action = request.form.get("action", "save")
    notice, error = None, None
    if action == "pause":
        subscriber.status, subscriber.paused_reason = "paused", "reader"
        notice = "Your digest is paused. Resume it here whenever you like."
    elif action == "resume":
        subscriber.status, subscriber.paused_reason, subscriber.bounces = "active", None, 0
        notice = "Your digest is back on."
    elif action == "unsubscribe":
        unsubscribe(subscriber)
        notice = "You are unsubscribed. No more digests will be sent."
    elif action == "save":
        raw = [t for t in request.form.getlist("topic") if t.strip()]
        raw += [line for line in request.form.get("add", "").splitlines() if line.strip()]
        frequency = request.form.get("frequency", subscriber.frequency)
        try:
            _check_frequency(frequency)
            topics = parse_topics(session, raw)
        except TopicError as exc:
            error = f"Topics: {exc}."
        except SubscriptionError as exc:
            error = str(exc)
        else:
            subscriber.topics = [t.key for t in topics]
            subscriber.frequency = frequency
            notice = "Saved."
    else:
        error = "Unknown action."
    if error:
        session.rollback()
    return render_template("subscription.html", subscriber=subscriber, token=token,
                           topics=stored_topics(session, subscriber.topics),
                           frequencies=FREQUENCIES, notice=notice,
                           error=error), 400 if error else 200


def _unsubscribing(token: str) -> Subscriber:
    return _subscriber_of(token, LinkSigner.read_unsubscribe,
                          "This unsubscribe link is not valid (or the subscription no longer "
                          "exists).")


@bp.get("/unsubscribe/<token>")
def unsubscribe_page(token: str) -> str:
    """The visible link: a page with one button (a GET alone changes nothing, so link
    checkers in mail systems cannot unsubscribe anyone)."""
    subscriber = _unsubscribing(token)
    return render_template("unsubscribe.html", subscriber=subscriber, token=token, done=False)


@bp.post("/unsubscribe/<token>")
@csrf.exempt
def unsubscribe_post(token: str) -> Response:
    """RFC 8058 one-click (a POST with List-Unsubscribe=One-Click, no cookies) and the page's
    button: unsubscribes at once and answers 200."""
    subscriber = _unsubscribing(token)
    unsubscribe(subscriber)
    body = render_template("unsubscribe.html", subscriber=subscriber, token=token, done=True)
    return Response(body, 200, content_type="text/html; charset=utf-8")


class _KeyLoadingSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions (which hold the form's CSRF token), signed with the key
    from secret_key(): read on first use, so creating the app needs no database."""

    def get_signing_serializer(self, app):  # noqa: ANN001, ANN201
        if not app.secret_key:
            try:
                with session_scope(app.config["DATABASE_URL"]) as session:
                    app.secret_key = secret_key(session)
            except SQLAlchemyError:
                return None  # no session this time; the page itself reports the database
        return super().get_signing_serializer(app)


def init_app(app) -> None:  # noqa: ANN001
    """Register the blueprint, CSRF protection for its forms and the rate limits."""
    app.register_blueprint(bp)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # the form's token lives with the session
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    # the cookie carries only the form's CSRF token; over https it is never sent in the clear
    app.config.setdefault("SESSION_COOKIE_SECURE",
                          str(app.config.get("BASE_URL") or "").startswith("https://"))
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config.get("REDIS_URL") or "memory://")
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "immunofeed")
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)  # Redis down: still answer
    csrf.init_app(app)
    from webapp import api

    csrf.exempt(api.bp)  # JSON only (see api.subscriptions), which no form can send
    limiter.init_app(app)

    app.session_interface = _KeyLoadingSessions()
