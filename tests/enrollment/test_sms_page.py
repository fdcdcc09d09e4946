"""The owner's SMS page: the provider stored per merchant (key sealed, env as the default),
"send me a test SMS" with SMS.ru's real answer (a local fake), and the red banner while
codes go to the console on a real (non-demo) installation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from fakes import smsru
from loyalwallet import db
from loyalwallet.config import DEMO_FILE, Settings
from loyalwallet.enrollment import sms
from loyalwallet.merchants.models import Merchant
from loyalwallet.outbox import worker
from staff_support import add_staff, login
from support import Shop


@pytest.fixture
def smsru_fake(fake_smsru_server: smsru.FakeSmsRu, monkeypatch: pytest.MonkeyPatch) -> smsru.FakeSmsRu:
    """SMS.ru's address points at the fake; the provider itself is the page's choice (the
    environment keeps the console default)."""
    monkeypatch.delenv("LOYALWALLET_SMS_PROVIDER", raising=False)
    monkeypatch.delenv("LOYALWALLET_SMSRU_API_ID", raising=False)
    monkeypatch.setenv("LOYALWALLET_SMSRU_BASE_URL", fake_smsru_server.url)
    fake_smsru_server.script.clear()
    return fake_smsru_server


@pytest.fixture
def demo_marker(settings: Settings) -> Iterator[None]:
    path = settings.data_dir / DEMO_FILE
    path.write_text("{}")
    yield
    path.unlink()


def test_the_console_banner_on_a_real_install_and_not_in_the_demo(
    app: Any, shop: Shop, smsru_fake: smsru.FakeSmsRu, settings: Settings
) -> None:
    assert not (settings.data_dir / DEMO_FILE).exists()
    manager = login(app, add_staff(shop, "manager"))
    owner = login(app, add_staff(shop, "owner"))
    for path in ("/admin", "/admin/programs", "/admin/alerts"):
        r = owner.get(path)
        assert 'id="sms-console-banner"' in r.text and 'href="/admin/sms"' in r.text, path
    r = manager.get("/admin/guests")
    assert 'id="sms-console-banner"' in r.text and 'href="/admin/sms"' not in r.text  # not the manager's page
    assert "Гости не получают SMS" in r.text  # in the staff member's language (Russian by default)


def test_the_demo_keeps_the_console_without_alarm(app: Any, shop: Shop, demo_marker: None) -> None:
    owner = login(app, add_staff(shop, "owner"))
    assert 'id="sms-console-banner"' not in owner.get("/admin").text


@pytest.mark.browser
def test_choose_smsru_and_send_a_test_sms_in_the_browser(
    page: Any, live_server: Any, shop: Shop, smsru_fake: smsru.FakeSmsRu
) -> None:
    owner = add_staff(shop, "owner")
    page.goto(f"{live_server.url}/login?next=/admin/sms")
    page.fill("#login", owner.login)
    page.fill("#password", owner.password)
    page.click("button[type=submit]")
    page.wait_for_url("**/admin/sms")
    assert page.locator("#sms-console-banner").count() == 1

    # A key SMS.ru refuses: its answer, the typed values kept, nothing stored.
    page.check("#sms-smsru")
    page.fill("#sms-key", "WRONG-KEY")
    page.fill("#sms-sender", "Zerno")
    page.click("#sms-form button[type=submit]")
    error = page.locator("#sms-error").inner_text()
    assert "SMS.ru did not accept this key" in error and "Неправильный api_id" in error
    assert page.input_value("#sms-sender") == "Zerno" and page.input_value("#sms-key") == "WRONG-KEY"
    assert page.is_checked("#sms-smsru")
    with db.read() as session:
        merchant = session.get(Merchant, shop.merchant_id)
        assert merchant is not None and "sms" not in (merchant.settings or {})

    # The right key: stored sealed, the banner goes away.
    page.fill("#sms-key", smsru.API_ID)
    page.click("#sms-form button[type=submit]")
    page.wait_for_selector("text=SMS settings saved.")
    assert page.locator("#sms-console-banner").count() == 0
    assert "SMS.ru" in page.locator("#sms-provider").inner_text()
    with db.read() as session:
        merchant = session.get(Merchant, shop.merchant_id)
        assert merchant is not None
        stored = merchant.settings["sms"]
        assert stored["provider"] == "smsru" and smsru.API_ID not in str(stored)  # sealed
    assert smsru.API_ID not in page.content()

    # The test SMS: SMS.ru's real answer, then a refusal in its own words.
    page.fill("#sms-phone", "8 916 555-01-02")
    page.click("#sms-test")
    page.wait_for_selector("#sms-test-result")
    assert "SMS.ru accepted the SMS" in page.locator("#sms-test-result").inner_text()
    got = smsru_fake.last_to("+79165550102")
    assert (
        got is not None and got.sender == "Zerno" and "тестовое SMS" in got.msg
    )  # in the merchant's language
    smsru_fake.fail_next(207, "На этот номер нельзя отправлять сообщения", per_number=True)
    page.click("#sms-test")
    page.wait_for_selector("#sms-answer")
    assert "207" in page.locator("#sms-answer").inner_text()
    assert page.input_value("#sms-phone") == "8 916 555-01-02"


def test_guests_codes_go_through_the_merchants_choice(
    app: Any, shop: Shop, smsru_fake: smsru.FakeSmsRu
) -> None:
    """The environment says console; the merchant chose SMS.ru: its guests' SMS go there."""
    from loyalwallet.enrollment.sms import settings as sms_settings
    from loyalwallet.merchants.actors import system

    with db.transaction() as session:
        owner = system(shop.merchant_id)
        sms_settings.set_sms(session, owner, "smsru", smsru.API_ID, "Zerno")
        sms.queue_sms(session, shop.merchant_id, "+79165550177", "Код: 111222")
    worker.drain()
    got = smsru_fake.last_to("+79165550177")
    assert got is not None and got.msg == "Код: 111222" and got.sender == "Zerno"
    with db.read() as session:
        merchant = session.scalar(select(Merchant).where(Merchant.id == shop.merchant_id))
        assert sms.config_for(merchant).source == "merchant"
        assert sms.config_for(None).provider == "console"  # the installation's default
