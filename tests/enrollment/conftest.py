"""Fixtures of the enrollment tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes import smsru
from loyalwallet.enrollment import rules


@pytest.fixture(autouse=True)
def lenient_ip_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test client comes from one address; tests of the IP limits set their own."""
    monkeypatch.setitem(rules.LIMITS, "sms_ip", (rules.Limit(rules.HOUR, 10**6),))
    monkeypatch.setitem(rules.LIMITS, "invite_ip", (rules.Limit(rules.HOUR, 10**6),))


@pytest.fixture(scope="session")
def fake_smsru_server() -> Iterator[smsru.FakeSmsRu]:
    fake = smsru.start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_smsru(fake_smsru_server: smsru.FakeSmsRu, monkeypatch: pytest.MonkeyPatch) -> smsru.FakeSmsRu:
    """SMS go to the local fake SMS.ru for this test."""
    monkeypatch.setenv("LOYALWALLET_SMS_PROVIDER", "smsru")
    monkeypatch.setenv("LOYALWALLET_SMSRU_API_ID", smsru.API_ID)
    monkeypatch.setenv("LOYALWALLET_SMSRU_BASE_URL", fake_smsru_server.url)
    fake_smsru_server.script.clear()
    return fake_smsru_server
