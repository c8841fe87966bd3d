"""A real SMTP server on loopback (aiosmtpd, in the test process) that keeps what it accepts,
and can be told to answer some recipients with a temporary (4xx) or permanent (5xx) refusal."""

from __future__ import annotations

import email
import socket
import threading
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import default

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

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
        return "250 Message accepted for delivery"


class SmtpSink:
    """Start with `with SmtpSink() as sink:`; sink.url is the IMMUNOFEED_SMTP_URL to use."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[bytes] = []  # each accepted message as it came
        self._parsed: list[EmailMessage] = []
        self.lock = threading.Lock()
        # address -> list of replies to give, one per attempt (the last one repeats)
        self.replies: dict[str, list[str]] = {}
        # called with the number of messages kept so far before each is kept; False refuses it
        self.before_accept: Callable[[int], bool] | None = None
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?max_rate=0"

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
