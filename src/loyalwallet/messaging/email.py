"""E-mail behind a small provider interface: SMTP (stdlib smtplib: host, port, TLS mode,
login; LOYALWALLET_SMTP_*) or, without a host, the console (development).

Errors are sorted for the outbox: a refused recipient (5xx for the address) is a bounce
and permanent; a connection problem or a 4xx is worth retrying.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

from loyalwallet.config import env

log = logging.getLogger("loyalwallet.email")


@dataclass
class EmailError(Exception):
    detail: str
    permanent: bool = False
    bounced: bool = False  # the address itself was refused
    code: str | None = None  # the SMTP reply code of a refused address, e.g. "550"

    def __str__(self) -> str:
        return self.detail


class EmailProvider(Protocol):
    name: str

    def send(self, message: EmailMessage) -> None: ...


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    tls: str  # none | starttls | ssl
    user: str | None
    password: str | None
    sender: str
    timeout: float = 20.0


def smtp_settings() -> SmtpSettings | None:
    host = env("SMTP_HOST")
    if not host:
        return None
    tls = (env("SMTP_TLS", "starttls") or "starttls").lower()
    if tls not in ("none", "starttls", "ssl"):
        raise ValueError("LOYALWALLET_SMTP_TLS is none, starttls or ssl")
    default_port = {"none": "25", "starttls": "587", "ssl": "465"}[tls]
    return SmtpSettings(
        host=host,
        port=int(env("SMTP_PORT", default_port) or default_port),
        tls=tls,
        user=env("SMTP_USER") or None,
        password=env("SMTP_PASSWORD") or None,
        sender=env("SMTP_FROM") or f"loyalwallet@{host}",
    )


class SmtpProvider:
    name = "smtp"

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def connect(self) -> smtplib.SMTP:
        s = self.settings
        try:
            if s.tls == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    s.host, s.port, timeout=s.timeout, context=ssl.create_default_context()
                )
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
                if s.tls == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
            if s.user:
                smtp.login(s.user, s.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise EmailError(f"smtp login refused: {exc.smtp_code}", permanent=False) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise EmailError(f"smtp connect: {type(exc).__name__}: {exc}"[:300]) from exc
        return smtp

    def send(
        self, message: EmailMessage, smtp: smtplib.SMTP | None = None, envelope_from: str | None = None
    ) -> None:
        """`envelope_from`: the Return-Path late bounces come back to (messaging.bounces)."""
        if "From" not in message:
            message["From"] = self.settings.sender
        self._deliver(smtp, lambda conn: conn.send_message(message, from_addr=envelope_from))

    def send_bytes(
        self, to: str, data: bytes, smtp: smtplib.SMTP | None = None, envelope_from: str | None = None
    ) -> None:
        """A message already rendered (its From is the configured sender)."""
        self._deliver(smtp, lambda conn: conn.sendmail(envelope_from or self.settings.sender, [to], data))

    def _deliver(self, smtp: smtplib.SMTP | None, action: Callable[[smtplib.SMTP], object]) -> None:
        own = smtp is None
        conn = smtp or self.connect()
        try:
            action(conn)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _msg in exc.recipients.values()]
            permanent = all(500 <= c < 600 for c in codes)
            raise EmailError(
                f"recipient refused: {codes}", permanent=permanent, bounced=permanent, code=str(max(codes))
            ) from exc
        except smtplib.SMTPResponseException as exc:
            raise EmailError(f"smtp {exc.smtp_code}", permanent=500 <= exc.smtp_code < 600) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise EmailError(f"smtp: {type(exc).__name__}: {exc}"[:300]) from exc
        finally:
            if own:
                try:
                    conn.quit()
                except (OSError, smtplib.SMTPException):
                    conn.close()


# One SMTP connection kept per worker thread between a campaign's chunks: a fresh
# connection costs the TCP handshake, the greeting and EHLO (and TLS, and the login) for
# every 100 messages. Checked with NOOP before reuse; dropped after IDLE_SECONDS.
IDLE_SECONDS = 30.0
_held = threading.local()


def borrow(provider: SmtpProvider) -> smtplib.SMTP:
    """A live connection for these settings: the one this thread kept, else a new one."""
    held = getattr(_held, "conn", None)
    _held.conn = None
    if held is not None:
        settings, conn, since = held
        if settings == provider.settings and time.monotonic() - since < IDLE_SECONDS:
            try:
                if conn.noop()[0] == 250:
                    return conn
            except (OSError, smtplib.SMTPException):
                pass
        close(conn)
    return provider.connect()


def give_back(provider: SmtpProvider, conn: smtplib.SMTP) -> None:
    """Keep a connection whose last transaction ended well for this thread's next chunk."""
    old = getattr(_held, "conn", None)
    if old is not None:
        close(old[1])
    _held.conn = (provider.settings, conn, time.monotonic())


def close(conn: smtplib.SMTP) -> None:
    try:
        conn.quit()
    except (OSError, smtplib.SMTPException):
        conn.close()


class ConsoleProvider:
    """Without LOYALWALLET_SMTP_HOST: the message goes to the log (development)."""

    name = "console"
    sent: list[EmailMessage] = []

    def send(self, message: EmailMessage) -> None:
        ConsoleProvider.sent = [*ConsoleProvider.sent[-99:], message]
        log.info("e-mail to %s: %s", message["To"], message["Subject"])


def get_provider() -> EmailProvider:
    settings = smtp_settings()
    return SmtpProvider(settings) if settings is not None else ConsoleProvider()
