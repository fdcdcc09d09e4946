"""A process keeps a bounded set of APNs connections: the least recently used and the
idle ones are closed, never one with a push under way."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from loyalwallet.wallet.apple import apns


def _key() -> dict[str, Any]:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {"token_auth": apns.TokenAuth(pem, "KEYID12345", "TEAM123456")}


def test_least_recently_used_connections_are_closed_beyond_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    apns.reset()
    monkeypatch.setenv("LOYALWALLET_APNS_MAX_CONNECTIONS", "3")
    try:
        made = []
        for i in range(5):
            with apns.using(f"test:{i}", _key) as p:
                made.append(p)
        assert apns.open_count() == 3
        assert [p.is_closed for p in made] == [True, True, False, False, False]
        # Used again: the same client, not a new connection.
        with apns.using("test:4", _key) as p:
            assert p is made[4]
    finally:
        apns.reset()


def test_a_connection_in_use_is_closed_only_when_its_push_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    apns.reset()
    monkeypatch.setenv("LOYALWALLET_APNS_MAX_CONNECTIONS", "1")
    try:
        busy = apns.pusher("test:busy", _key)  # a push under way
        with apns.using("test:other", _key):
            pass
        assert not busy.is_closed
        apns.release(busy)
        assert busy.is_closed
    finally:
        apns.reset()


def test_idle_connections_are_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    apns.reset()
    monkeypatch.setenv("LOYALWALLET_APNS_IDLE_SECONDS", "0")
    try:
        with apns.using("test:old", _key) as old:
            pass
        with apns.using("test:new", _key):
            pass
        assert old.is_closed and apns.open_count() == 1
    finally:
        apns.reset()
