"""Fixtures of the feedback tests: a fake Telegram Bot API, lenient per-IP limits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.telegram import FakeTelegram
from loyalwallet.enrollment import rules


@pytest.fixture(autouse=True)
def lenient_ip_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test client comes from one address; the IP limit's own test sets its own."""
    monkeypatch.setitem(rules.LIMITS, "feedback_ip", (rules.Limit(rules.HOUR, 10**6),))


@pytest.fixture
def tg(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTelegram]:
    fake = FakeTelegram().start()
    monkeypatch.setenv("LOYALWALLET_TELEGRAM_API_URL", fake.url)
    yield fake
    fake.stop()
