"""The SMTP connection a campaign's chunk used is kept for the next chunk (one greeting
for many messages), checked before reuse: a connection the server dropped is replaced."""

from __future__ import annotations

import socket

import pytest

from fakes.smtp import FakeSmtp
from loyalwallet.messaging import email


def test_a_kept_connection_is_reused_and_a_dead_one_replaced(smtp: FakeSmtp) -> None:
    settings = email.smtp_settings()
    assert settings is not None
    provider = email.SmtpProvider(settings)
    first = email.borrow(provider)
    provider.send_bytes("a@example.test", b"Subject: 1\r\n\r\nx\r\n", smtp=first)
    email.give_back(provider, first)
    again = email.borrow(provider)
    assert again is first
    provider.send_bytes("b@example.test", b"Subject: 2\r\n\r\ny\r\n", smtp=again)

    # The connection dies while it is kept (the server's idle timeout, the network).
    again.sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
    email.give_back(provider, again)
    fresh = email.borrow(provider)
    assert fresh is not again
    provider.send_bytes("c@example.test", b"Subject: 3\r\n\r\nz\r\n", smtp=fresh)
    email.close(fresh)
    assert [rcpt for _, rcpt in smtp.envelopes] == [
        ["a@example.test"],
        ["b@example.test"],
        ["c@example.test"],
    ]


def test_the_process_opens_at_most_the_configured_connections(smtp: FakeSmtp, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LOYALWALLET_SMTP_CONNECTIONS", "2")
    settings = email.smtp_settings()
    assert settings is not None
    provider = email.SmtpProvider(settings)
    first = email.borrow(provider)
    second = email.borrow_more(provider)
    assert second is not None and second is not first
    assert email.borrow_more(provider) is None  # both slots lent out
    email.give_back(provider, first)
    again = email.borrow_more(provider)
    assert again is first  # the kept one, no new connection
    email.close(again)
    email.close(second)
    monkeypatch.setenv("LOYALWALLET_SMTP_CONNECTIONS", "many")
    with pytest.raises(ValueError):
        email.connections_limit()
