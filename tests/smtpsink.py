"""A real SMTP server on loopback (aiosmtpd, in the test process) that keeps what it accepts,
and can be told to answer some recipients with a temporary (4xx) or permanent (5xx) refusal,
to offer STARTTLS or speak TLS from the start, and to require a login."""

from __future__ import annotations

import email
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by itself, and its key (PEM files in FOLDER): trusted
    by a client that is given the certificate as its CA file (SSL_CERT_FILE)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: ANN001
        session.host_name = hostname  # aiosmtpd leaves this to a handler that hooks EHLO
        with self.sink.lock:
            self.sink.connections.add(session.peer)  # the client's address and port
        return responses

    async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: ANN001
        reply = self.sink.reply_for(address)
        if reply and not reply.startswith("250"):
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
        if self.sink.before_accept is not None and not self.sink.before_accept(
                len(self.sink.received)):
            return "451 4.3.0 Message not accepted"
        with self.sink.lock:
            self.sink.received.append(envelope.content)  # parsed when read: a quick server
            self.sink.logins.append(session.authenticated)
        return "250 Message accepted for delivery"


class SmtpSink:
    """Start with `with SmtpSink() as sink:`; sink.url is the IMMUNOFEED_SMTP_URL to use.

    TLS: None, "starttls" (offered, and required before a login) or "implicit" (smtps); it
    needs CERTIFICATE, a (cert, key) pair. LOGIN: a (user, password) the server requires."""

    def __init__(self, tls: str | None = None, certificate: tuple[Path, Path] | None = None,
                 login: tuple[str, str] | None = None) -> None:
        self.port = free_port()
        self.tls = tls
        self.login = login
        self.received: list[bytes] = []  # each accepted message as it came
        self.logins: list[bool] = []  # whether each one's session had logged in
        self.connections: set[object] = set()  # the clients' (address, port), from their EHLO
        self._parsed: list[EmailMessage] = []
        self.lock = threading.Lock()
        # address -> list of replies to give, one per attempt (the last one repeats)
        self.replies: dict[str, list[str]] = {}
        # called with the number of messages kept so far before each is kept; False refuses it
        self.before_accept: Callable[[int], bool] | None = None
        options: dict[str, object] = {}
        if tls:
            assert certificate, "TLS needs a certificate"
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*certificate)
            if tls == "starttls":
                options.update(tls_context=context, require_starttls=True)
            else:
                options.update(ssl_context=context)
        if login:
            # with implicit TLS aiosmtpd cannot tell the connection is encrypted: it is
            options.update(authenticator=self._authenticate, auth_required=True,
                           auth_require_tls=tls == "starttls")
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port,
                                     server_hostname="127.0.0.1", **options)

    def _authenticate(self, server, session, envelope, mechanism, auth_data):  # noqa: ANN001
        given = (auth_data.login.decode(), auth_data.password.decode())
        return AuthResult(success=given == self.login, handled=False)  # the server answers

    @property
    def url(self) -> str:
        scheme = "smtps" if self.tls == "implicit" else "smtp"
        return f"{scheme}://127.0.0.1:{self.port}?max_rate=0"

    @property
    def messages(self) -> list[EmailMessage]:
        """What was accepted, parsed, in order."""
        with self.lock:
            for raw in self.received[len(self._parsed):]:
                self._parsed.append(email.message_from_bytes(raw, policy=default))  # type: ignore[arg-type]
            return list(self._parsed)

    def reply_for(self, address: str) -> str | None:
        with self.lock:
            queued = self.replies.get(address)
            if not queued:
                return None
            return queued.pop(0) if len(queued) > 1 else queued[0]

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
