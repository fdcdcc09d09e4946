"""Fixtures shared by tests that send e-mail: the local SMTP server and the settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.smtp import FakeSmtp


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSmtp]:
    fake = FakeSmtp().start()
    monkeypatch.setenv("LOYALWALLET_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("LOYALWALLET_SMTP_PORT", str(fake.port))
    monkeypatch.setenv("LOYALWALLET_SMTP_TLS", "none")
    monkeypatch.setenv("LOYALWALLET_SMTP_FROM", "cafe@loyalwallet.test")
    yield fake
    fake.stop()
