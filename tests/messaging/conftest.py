"""Fixtures of the messaging tests: the local SMTP server and the fake SMS.ru."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes import smsru
from messaging_support import smtp  # noqa: F401  (a fixture)


@pytest.fixture(scope="session")
def fake_smsru_server() -> Iterator[smsru.FakeSmsRu]:
    fake = smsru.start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_smsru(fake_smsru_server: smsru.FakeSmsRu, monkeypatch: pytest.MonkeyPatch) -> smsru.FakeSmsRu:
    monkeypatch.setenv("LOYALWALLET_SMS_PROVIDER", "smsru")
    monkeypatch.setenv("LOYALWALLET_SMSRU_API_ID", smsru.API_ID)
    monkeypatch.setenv("LOYALWALLET_SMSRU_BASE_URL", fake_smsru_server.url)
    fake_smsru_server.script.clear()
    return fake_smsru_server
