"""Fixtures of the Telegram card tests: a fake Bot API with a bot of its own per test."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from fakes.telegram import FakeTelegram


@pytest.fixture
def tg(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTelegram]:
    # A token of its own: a bot serves one merchant, and every test makes a merchant.
    fake = FakeTelegram(token=f"{secrets.randbelow(10**9) + 10**9}:AA{secrets.token_urlsafe(26)}").start()
    monkeypatch.setenv("LOYALWALLET_TELEGRAM_API_URL", fake.url)
    yield fake
    fake.stop()
