"""A local SMTP server on 127.0.0.1 (aiosmtpd, a well-kept implementation of RFC 5321):
it keeps every accepted message, and refuses recipients at `bounce.test` with
"550 5.1.1 mailbox unavailable" and at `busy.test` with "451 4.3.0 try again later", as
a real mail server does for a dead or a greylisted address. `connections` lists the
client ports of the connections that said EHLO; an address put in `drop` makes the
server close the connection at its RCPT (once each), as a crashing or restarting server
would, before the message was accepted."""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from support import free_port


@dataclass
class FakeSmtp:
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # every RCPT answered 5xx
    connections: list[int] = field(default_factory=list)
    drop: set[str] = field(default_factory=set)
    port: int = 0
    _controller: Controller | None = None

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.connections.append(session.peer[1])
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.drop:
            self.drop.discard(address)
            server.transport.close()
            return "421 4.3.2 closing"
        domain = address.rsplit("@", 1)[-1].lower()
        if domain == "bounce.test":
            self.refused.append(address)
            return "550 5.1.1 mailbox unavailable"
        if domain == "busy.test":
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"

    def start(self) -> FakeSmtp:
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]
