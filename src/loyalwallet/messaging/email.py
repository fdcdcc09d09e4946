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
    deferred: bool = False  # the address alone was put off (4xx): the connection is fine

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
                f"recipient refused: {codes}",
                permanent=permanent,
                bounced=permanent,
                code=str(max(codes)),
                deferred=not permanent,
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


# The SMTP connections of this process, shared by the worker's threads: at most
# LOYALWALLET_SMTP_CONNECTIONS open at once (a campaign's chunk sends over several of
# them in parallel: messaging.campaign_email), kept between chunks (a fresh connection
# costs the TCP handshake, the greeting and EHLO, and TLS and the login, for every chunk),
# checked with NOOP before reuse, dropped after IDLE_SECONDS.
IDLE_SECONDS = 30.0
DEFAULT_CONNECTIONS = 3
MAX_CONNECTIONS = 16


def connections_limit() -> int:
    """LOYALWALLET_SMTP_CONNECTIONS (1-16, default 3): the SMTP connections a process
    opens at once. Mail providers accept several per client; a few in parallel hide the
    wait for each reply, which is most of the time of sending a message."""
    raw = env("SMTP_CONNECTIONS") or ""
    try:
        value = int(raw) if raw.strip() else DEFAULT_CONNECTIONS
    except ValueError:
        raise ValueError("LOYALWALLET_SMTP_CONNECTIONS is a whole number (1-16)") from None
    return max(1, min(MAX_CONNECTIONS, value))


class _Pool:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.idle: list[tuple[SmtpSettings, smtplib.SMTP, float]] = []
        self.busy: set[int] = set()  # id() of the connections lent out

    def take(self, provider: SmtpProvider, wait: float | None) -> smtplib.SMTP | None:
        """A slot and a live connection; None when no slot is free within `wait`
        seconds (None: wait as long as the provider's timeout, then EmailError)."""
        limit = connections_limit()
        deadline = time.monotonic() + (provider.settings.timeout if wait is None else wait)
        with self.cond:
            while len(self.busy) >= limit:
                left = deadline - time.monotonic()
                if left <= 0:
                    if wait is None:
                        raise EmailError("no SMTP connection free (LOYALWALLET_SMTP_CONNECTIONS)")
                    return None
                self.cond.wait(left)
            now = time.monotonic()
            stale = [i for i in self.idle if i[0] != provider.settings or now - i[2] >= IDLE_SECONDS]
            self.idle = [i for i in self.idle if i not in stale]
            held = self.idle.pop()[1] if self.idle else None
            marker = object()
            self.busy.add(id(marker))  # the slot, held until the connection is known
        try:
            for _settings, old, _since in stale:
                _quit(old)
            conn = None
            if held is not None:
                try:
                    if held.noop()[0] == 250:
                        conn = held
                except (OSError, smtplib.SMTPException):
                    pass
                if conn is None:
                    _quit(held)
            if conn is None:
                conn = provider.connect()
        except BaseException:
            self._free(id(marker))
            raise
        with self.cond:
            self.busy.discard(id(marker))
            self.busy.add(id(conn))
        return conn

    def _free(self, key: int) -> bool:
        with self.cond:
            if key not in self.busy:
                return False
            self.busy.discard(key)
            self.cond.notify()
            return True

    def put(self, provider: SmtpProvider, conn: smtplib.SMTP) -> None:
        with self.cond:
            self.busy.discard(id(conn))
            self.idle.append((provider.settings, conn, time.monotonic()))
            extra = self.idle[:-MAX_CONNECTIONS] if len(self.idle) > MAX_CONNECTIONS else []
            del self.idle[: len(extra)]
            self.cond.notify()
        for _settings, old, _since in extra:
            _quit(old)

    def drop(self, conn: smtplib.SMTP) -> None:
        self._free(id(conn))
        _quit(conn)


_POOL = _Pool()


def borrow(provider: SmtpProvider, wait: float | None = None) -> smtplib.SMTP:
    """A live connection for these settings: a kept one, else a new one; waits for a
    free slot (at most the provider's timeout) when the process's are all lent out."""
    conn = _POOL.take(provider, None if wait is None else wait)
    if conn is None:
        raise EmailError("no SMTP connection free (LOYALWALLET_SMTP_CONNECTIONS)")
    return conn


def borrow_more(provider: SmtpProvider) -> smtplib.SMTP | None:
    """Another connection if a slot is free right now, else None (never waits)."""
    return _POOL.take(provider, 0.0)


def give_back(provider: SmtpProvider, conn: smtplib.SMTP) -> None:
    """Keep a connection whose last transaction ended well for the next chunk."""
    _POOL.put(provider, conn)


def close(conn: smtplib.SMTP) -> None:
    """Close a connection (a borrowed one gives its slot back)."""
    _POOL.drop(conn)


def _quit(conn: smtplib.SMTP) -> None:
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
