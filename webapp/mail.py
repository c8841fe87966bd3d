"""Outgoing email: signed links back to the site, message building from templates, and delivery
over SMTP (IMMUNOFEED_SMTP_URL) with one reused connection, a bounded rate and retries.

With no SMTP server configured, messages are written to var/outbox/ as .eml files instead, so a
demo can show what would have been sent."""

from __future__ import annotations

import binascii
import secrets
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import compat32
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer
from jinja2 import Environment, PackageLoader, select_autoescape

from db import settings
from db.models import utcnow

CONFIRM_MAX_AGE = 7 * 24 * 3600  # seconds a confirmation link stays valid
WIRE = compat32.clone(linesep="\r\n")  # SMTP wants CRLF line ends; sendmail() sends bytes as given
OUTBOX = Path("var/outbox")


class MailError(Exception):
    """A message could not be handed to the mail server."""


class TemporaryFailure(MailError):
    """The server said "try again later" (4xx) or went away, and retrying did not help."""


class PermanentFailure(MailError):
    """The server refused the message or its recipient for good (5xx)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code


class MailConfigError(ValueError):
    """IMMUNOFEED_SMTP_URL or IMMUNOFEED_BASE_URL cannot be used."""


# ----------------------------------------------------------------------------- signed links

class LinkSigner:
    """Signed tokens for the links in emails. A confirmation token carries the request itself
    (address, topics, frequency) and expires, so nothing is stored before it is followed;
    manage and unsubscribe tokens carry the subscriber's id and random key."""

    def __init__(self, secret: str) -> None:
        self._confirm = URLSafeTimedSerializer(secret, salt="immunofeed.confirm")
        self._manage = URLSafeSerializer(secret, salt="immunofeed.manage")
        self._unsubscribe = URLSafeSerializer(secret, salt="immunofeed.unsubscribe")

    def confirm_token(self, email: str, topics: list[str], frequency: str) -> str:
        return self._confirm.dumps({"e": email, "t": topics, "f": frequency})

    def read_confirm(self, token: str, max_age: int = CONFIRM_MAX_AGE) -> dict[str, Any] | None:
        """The request in TOKEN; None if it is forged; SignatureExpired if too old."""
        try:
            data = self._confirm.loads(token, max_age=max_age)
        except SignatureExpired:
            raise
        except BadSignature:
            return None
        return data if isinstance(data, dict) else None

    def manage_token(self, subscriber_id: int, key: str) -> str:
        return self._manage.dumps([subscriber_id, key])

    def unsubscribe_token(self, subscriber_id: int, key: str) -> str:
        return self._unsubscribe.dumps([subscriber_id, key])

    def read_manage(self, token: str) -> tuple[int, str] | None:
        return _id_and_key(self._manage, token)

    def read_unsubscribe(self, token: str) -> tuple[int, str] | None:
        return _id_and_key(self._unsubscribe, token)


def _id_and_key(serializer: URLSafeSerializer, token: str) -> tuple[int, str] | None:
    try:
        data = serializer.loads(token)
    except BadSignature:
        return None
    if (isinstance(data, list) and len(data) == 2 and isinstance(data[0], int)
            and isinstance(data[1], str)):
        return data[0], data[1]
    return None


@dataclass(frozen=True)
class SiteLinks:
    """Absolute URLs on the public site for the links inside emails."""

    base_url: str
    signer: LinkSigner

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    def confirm(self, email: str, topics: list[str], frequency: str) -> str:
        return self.url("/subscribe/confirm/" + self.signer.confirm_token(email, topics,
                                                                          frequency))

    def manage(self, subscriber_id: int, key: str) -> str:
        return self.url("/subscriptions/" + self.signer.manage_token(subscriber_id, key))

    def unsubscribe(self, subscriber_id: int, key: str) -> str:
        return self.url("/unsubscribe/" + self.signer.unsubscribe_token(subscriber_id, key))


def base_url_setting() -> str:
    """IMMUNOFEED_BASE_URL, which emails sent outside a web request need for their links."""
    base = settings.get("BASE_URL").strip()
    if not base:
        raise MailConfigError("set IMMUNOFEED_BASE_URL (e.g. https://immunofeed.example.org) "
                              "so that emails can link back to the site")
    if urlsplit(base).scheme not in ("http", "https") or not urlsplit(base).netloc:
        raise MailConfigError(f"IMMUNOFEED_BASE_URL must be an http(s) URL, not {base!r}")
    return base


# ----------------------------------------------------------------------------- messages

_templates = Environment(
    loader=PackageLoader("webapp", "templates/email"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(name: str, **context: Any) -> str:
    return _templates.get_template(name).render(**context)


def sender() -> tuple[str, str]:
    """(display name, address) of IMMUNOFEED_MAIL_FROM."""
    name, address = parseaddr(settings.get("MAIL_FROM"))
    if "@" not in address:
        raise MailConfigError(f"IMMUNOFEED_MAIL_FROM is not an email address: "
                              f"{settings.get('MAIL_FROM')!r}")
    return name or "ImmunoFeed", address


def _header(value: str) -> str | Header:
    return value if value.isascii() else Header(value, "utf-8")


def new_message(to: str, subject: str, text: str, html: str,
                message_id: str | None = None) -> Message:
    """A multipart/alternative message (plain text, then HTML) from IMMUNOFEED_MAIL_FROM.

    Built with the email package's compat32 classes: a digest run makes thousands, and these
    are several times quicker to build and serialise than Message's."""
    name, address = sender()
    # quoted-printable never holds "=_" (an "=" is always followed by two hex digits or a line
    # end), so this boundary cannot occur in the parts, and the generator need not search them
    message = MIMEMultipart("alternative", boundary=f"=_{secrets.token_hex(16)}")
    message["From"] = formataddr((name, address))
    message["To"] = to
    message["Subject"] = _header(subject)
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = message_id or make_msgid(domain=address.rpartition("@")[2])
    message["Auto-Submitted"] = "auto-generated"
    message.attach(_text_part(text, "plain"))
    message.attach(_text_part(html, "html"))
    return message


def _text_part(body: str, subtype: str) -> MIMENonMultipart:
    """A UTF-8 text part, quoted-printable: readable in the raw message, and encoded by
    binascii in C (the email package's own encoder is pure Python and several times slower on
    a digest's HTML)."""
    part = MIMENonMultipart("text", subtype, charset="utf-8")
    part["Content-Transfer-Encoding"] = "quoted-printable"
    part.set_payload(binascii.b2a_qp(body.encode("utf-8"), istext=True).decode("ascii"))
    return part


def text_and_html(message: Message) -> tuple[str, str]:
    """The plain-text and HTML parts of a message made by new_message()."""
    text, html = message.get_payload()  # type: ignore[misc]
    return (text.get_payload(decode=True).decode("utf-8"),
            html.get_payload(decode=True).decode("utf-8"))


def add_list_headers(message: Message, unsubscribe_url: str, token: str) -> None:
    """List-Id and the RFC 8058 one-click unsubscribe headers."""
    _, address = sender()
    domain = address.rpartition("@")[2]
    message["List-Id"] = f"ImmunoFeed digest <digest.{domain}>"
    mailto = f"mailto:{address}?subject={quote('unsubscribe ' + token)}"
    message["List-Unsubscribe"] = f"<{unsubscribe_url}>, <{mailto}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Precedence"] = "bulk"


# ----------------------------------------------------------------------------- delivery

@dataclass(frozen=True)
class Envelope:
    """A message serialised for SMTP, with its envelope sender and recipient."""

    sender: str
    recipient: str
    message_id: str
    data: bytes

    @classmethod
    def of(cls, message: Message) -> Envelope:
        return cls(parseaddr(message["From"])[1], str(message["To"]),
                   str(message["Message-ID"]), wire_bytes(message))


def wire_bytes(message: Message) -> bytes:
    """MESSAGE as SMTP sends it: what message.as_bytes(policy=WIRE) gives, several times
    quicker for a large digest. The generator writes the headers and MIME structure around short
    stand-ins for the bodies, then the bodies, already quoted-printable, take their places (a
    generator writes an encoded body out line by line, and searches it for the boundary, which
    quoted-printable text cannot contain: it never has a line of "=" signs)."""
    parts = message.get_payload() if message.is_multipart() else [message]
    bodies = [part.get_payload() for part in parts]
    if not all(isinstance(body, str) and body.isascii() for body in bodies):
        return message.as_bytes(policy=WIRE)
    stand_ins = [f"ImmunoFeedBody{i}{secrets.token_hex(8)}" for i in range(len(parts))]
    try:
        for part, stand_in in zip(parts, stand_ins, strict=True):
            part.set_payload(stand_in)
        data = message.as_bytes(policy=WIRE)
    finally:
        for part, body in zip(parts, bodies, strict=True):
            part.set_payload(body)
    for stand_in, body in zip(stand_ins, bodies, strict=True):
        data = data.replace(stand_in.encode(), body.encode().replace(b"\n", b"\r\n"), 1)
    return data


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    ssl: bool  # smtps:// (TLS from the start); smtp:// uses STARTTLS when offered
    username: str | None
    password: str | None
    max_rate: float  # messages per second; 0 = unbounded
    timeout: float

    @classmethod
    def from_url(cls, url: str) -> SmtpConfig:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise MailConfigError(f"IMMUNOFEED_SMTP_URL must look like smtp://user:password@host:"
                                  f"587 or smtps://host:465, not {_hide_password(url)!r}")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        try:
            port = parts.port or (465 if parts.scheme == "smtps" else 25)
            max_rate = float(query.get("max_rate", "20"))
            timeout = float(query.get("timeout", "30"))
        except ValueError as exc:
            raise MailConfigError(f"IMMUNOFEED_SMTP_URL: {exc}") from None
        return cls(host=parts.hostname, port=port, ssl=parts.scheme == "smtps",
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password else None,
                   max_rate=max(0.0, max_rate), timeout=timeout)


def _hide_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(":" + parts.password + "@", ":***@", 1)
    return url


class SmtpMailer:
    """Sends messages over one SMTP connection, opened on first use and re-opened if the
    server drops it; at most max_rate messages a second; 4xx answers retried with backoff."""

    def __init__(self, config: SmtpConfig, retries: int = 3, backoff: float = 2.0) -> None:
        self.config = config
        self.retries = retries
        self.backoff = backoff
        self._smtp: smtplib.SMTP | None = None
        self._last_send = 0.0

    def __enter__(self) -> SmtpMailer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None

    def _connect(self) -> smtplib.SMTP:
        c = self.config
        smtp: smtplib.SMTP | None = None
        try:
            if c.ssl:
                smtp = smtplib.SMTP_SSL(c.host, c.port, timeout=c.timeout,
                                        context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(c.host, c.port, timeout=c.timeout)
                smtp.ehlo()
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
            if c.username:
                smtp.login(c.username, c.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            smtp.close()  # type: ignore[union-attr]
            raise MailConfigError(f"SMTP login to {c.host}:{c.port} refused: "
                                  f"{exc.smtp_code} {_text(exc.smtp_error)}") from None
        except (smtplib.SMTPException, OSError) as exc:
            if smtp is not None:
                smtp.close()
            raise TemporaryFailure(f"cannot reach the mail server {c.host}:{c.port}: "
                                   f"{exc}") from None
        return smtp

    def _pace(self) -> None:
        if self.config.max_rate > 0:
            wait = self._last_send + 1.0 / self.config.max_rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        self._last_send = time.monotonic()

    def send(self, message: Message) -> None:
        """Hand MESSAGE to the server. Returns once the server has accepted it (250)."""
        self.send_envelope(Envelope.of(message))

    def send_envelope(self, envelope: Envelope) -> None:
        """Hand an already serialised message to the server (as send())."""
        delay = self.backoff
        for attempt in range(self.retries + 1):
            self._pace()
            try:
                if self._smtp is None:
                    self._smtp = self._connect()
                refused = self._smtp.sendmail(envelope.sender, [envelope.recipient],
                                              envelope.data)
            except smtplib.SMTPRecipientsRefused as exc:
                code, reason = next(iter(exc.recipients.values()))
                error: MailError = _failure(code, reason)
            except smtplib.SMTPResponseException as exc:
                error = _failure(exc.smtp_code, exc.smtp_error)
                if isinstance(error, TemporaryFailure):
                    self._reset()
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                self.close_quietly()
                error = TemporaryFailure(f"connection lost: {exc}")
            except TemporaryFailure as exc:  # could not connect
                error = exc
            else:
                if refused:  # some recipients refused; we send one recipient per message
                    code, reason = next(iter(refused.values()))
                    error = _failure(code, reason)
                else:
                    return
            if isinstance(error, PermanentFailure) or attempt == self.retries:
                raise error
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def _reset(self) -> None:
        try:
            if self._smtp is not None:
                self._smtp.rset()
        except (smtplib.SMTPException, OSError):
            self.close_quietly()

    def close_quietly(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _failure(code: int, reason: bytes | str) -> MailError:
    text = _text(reason)
    if 400 <= code < 500:
        return TemporaryFailure(f"{code} {text}")
    return PermanentFailure(code, text)


class OutboxMailer:
    """Writes each message to a folder as an .eml file (no SMTP server configured)."""

    def __init__(self, folder: Path = OUTBOX) -> None:
        self.folder = folder

    def __enter__(self) -> OutboxMailer:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def send(self, message: Message) -> None:
        self.send_envelope(Envelope.of(message))

    def send_envelope(self, envelope: Envelope) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = "".join(ch if ch.isalnum() else "_" for ch in envelope.message_id)
        path = self.folder / f"{stem.strip('_')[:150]}.eml"
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(envelope.data)
        temporary.replace(path)


def mailer_from_settings(**options: Any) -> SmtpMailer | OutboxMailer:
    url = settings.get("SMTP_URL").strip()
    if not url:
        return OutboxMailer()
    return SmtpMailer(SmtpConfig.from_url(url), **options)
