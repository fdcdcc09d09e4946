"""The iikoCloud client against the fake: tokens, errors, pacing, the published shapes."""

from __future__ import annotations

import pytest

from fakes.iiko import FakeIiko
from integrations.iiko.conftest import LOGIN
from loyalwallet.integrations.iiko.client import IikoClient, IikoError


def test_the_token_is_fetched_once_and_reused(iiko: FakeIiko) -> None:
    c = IikoClient(LOGIN, iiko.org_id)
    c.organizations()
    c.categories()
    c.programs()
    assert iiko.paths().count("/api/1/access_token") == 1


def test_an_expired_token_is_replaced_once_on_401(iiko: FakeIiko) -> None:
    c = IikoClient(LOGIN, iiko.org_id)
    c.organizations()
    iiko.tokens.clear()  # iiko forgot it (expired early)
    assert c.organizations()[0]["id"] == iiko.org_id
    assert iiko.paths().count("/api/1/access_token") == 2


def test_a_login_iiko_does_not_know_is_a_permanent_401(iiko: FakeIiko) -> None:
    with pytest.raises(IikoError) as err:
        IikoClient("wrong-login").organizations()
    assert err.value.status == 401 and not err.value.retryable


def test_errors_are_classified_retryable_or_permanent(iiko: FakeIiko) -> None:
    c = IikoClient(LOGIN, iiko.org_id)
    iiko.fail("/api/1/loyalty/iiko/customer/info", 503)
    with pytest.raises(IikoError) as err:
        c.find("phone", "+79161234567")
    assert err.value.retryable and err.value.status == 503
    with pytest.raises(IikoError) as err:
        IikoClient(LOGIN, "00000000-0000-0000-0000-000000000000").categories()
    assert err.value.status == 400 and not err.value.retryable and "not found" in err.value.description


def test_a_429_carries_iikos_retry_after(iiko: FakeIiko) -> None:
    c = IikoClient(LOGIN, iiko.org_id)
    c.organizations()
    iiko.rate_limit = 0
    with pytest.raises(IikoError) as err:
        c.organizations()
    assert err.value.status == 429 and err.value.retryable and err.value.retry_after == 1.0


def test_iiko_down_is_retryable(iiko: FakeIiko) -> None:
    iiko.stop()
    with pytest.raises(IikoError) as err:
        IikoClient(LOGIN, iiko.org_id).organizations()
    assert err.value.status == 0 and err.value.retryable
    iiko.start()


def test_an_unknown_guest_is_none_not_an_error(iiko: FakeIiko) -> None:
    assert IikoClient(LOGIN, iiko.org_id).find("phone", "+79160000000") is None


def test_calls_stay_under_the_configured_rate(iiko: FakeIiko, monkeypatch: pytest.MonkeyPatch) -> None:
    """iiko answers 429 past 5 calls a second; paced at 4 a second, a burst never meets it."""
    monkeypatch.setenv("LOYALWALLET_IIKO_RATE", "4")
    iiko.rate_limit = 5
    c = IikoClient(LOGIN, iiko.org_id)
    for _ in range(8):
        c.organizations()
    assert all(call.status == 200 for call in iiko.calls)
