"""The join flow over HTTP: form, SMS code, card; and every kind of bad input."""

from __future__ import annotations

import datetime as dt
import re

from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy import func, select, update

from enrollment_support import BONUS_RULES, connect_wallets, join, sms_code, start, submit
from loyalwallet import crypto, db
from loyalwallet.cards.models import Card
from loyalwallet.customers.models import Consent, Customer
from loyalwallet.customers.service import phone_index
from loyalwallet.enrollment import rules
from loyalwallet.enrollment.models import ConsentText, Join, OtpChallenge
from support import random_phone


def _counts(merchant_id: int) -> tuple[int, int, int]:
    with db.read() as session:
        return (
            session.scalar(
                select(func.count()).select_from(Customer).where(Customer.merchant_id == merchant_id)
            )
            or 0,
            session.scalar(select(func.count()).select_from(Card).where(Card.merchant_id == merchant_id))
            or 0,
            session.scalar(
                select(func.count()).select_from(Consent).where(Consent.merchant_id == merchant_id)
            )
            or 0,
        )


def _challenge(path: str) -> OtpChallenge:
    with db.read() as session:
        ch = session.scalar(select(OtpChallenge).where(OtpChallenge.token == path.rsplit("/", 1)[1]))
        assert ch is not None
        return ch


def test_join_page_renders_offer_and_form(client: TestClient, shop) -> None:
    pid = shop.program("bonus", BONUS_RULES)
    r = client.get(f"/join/{pid}?lang=en&channel=x&utm_source=instagram")
    assert r.status_code == 200
    assert "100 welcome points" in r.text and 'name="phone"' in r.text
    assert 'name="utm_source" value="instagram"' in r.text
    assert "frame-ancestors *" in r.headers["content-security-policy"]
    ru = client.get(f"/join/{pid}?lang=ru")
    assert "100 приветственных баллов" in ru.text and "Получить код по SMS" in ru.text


def test_full_join_creates_card_with_consents_and_channel(client: TestClient, shop) -> None:
    pid = shop.program("bonus", BONUS_RULES)
    connect_wallets(shop.merchant_id)
    ch = shop.post("/api/v1/channels", {"program_id": pid, "kind": "instagram", "name": "Insta bio"}).json()
    phone = random_phone()
    verify = start(
        client,
        pid,
        phone,
        name="Анна",
        birthday="1990-05-17",
        marketing="yes",
        channel=ch["slug"],
        utm_source="instagram",
        utm_campaign="spring",
    )
    assert _counts(shop.merchant_id) == (0, 0, 0)  # nothing exists before the code
    page = client.get(verify + "?lang=en")
    assert "We sent it to +7 *** ***-" in page.text
    r = client.post(verify, data={"code": sms_code(phone)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/join/done/")
    done = client.get(
        r.headers["location"], headers={"user-agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0)"}
    )
    assert "Add to Apple Wallet" in done.text or "Добавить в Apple Wallet" in done.text
    assert "Google Wallet" not in done.text  # an iPhone gets the Apple button only
    assert "/pass.pkpass" in done.text
    cards = shop.get(f"/api/v1/cards?phone={phone}").json()["items"]
    assert len(cards) == 1
    card = cards[0]
    assert card["balance"] == 100 and card["customer"]["name"] == "Анна"
    with db.read() as session:
        row = session.scalar(select(Card).where(Card.code == card["code"]))
        assert row is not None and row.channel == ch["slug"]
        consents = session.scalars(select(Consent).where(Consent.customer_id == row.customer_id)).all()
        assert {(c.kind, c.granted, c.channel) for c in consents} == {
            ("personal_data", True, "join_page"),
            ("marketing", True, "join_page"),
        }
        version = next(c.text_version for c in consents if c.kind == "personal_data")
        text = session.scalar(select(ConsentText.text).where(ConsentText.version == version))
        assert text and "152" in text
        joined = session.scalar(select(Join).where(Join.card_id == row.id))
        assert joined is not None and joined.utm_campaign == "spring" and joined.channel_id == ch["id"]
        customer = session.get(Customer, row.customer_id)
        assert customer is not None and customer.marketing_consent and customer.birth_md == 517


def test_same_phone_gets_the_existing_card(client: TestClient, shop) -> None:
    pid = shop.program("bonus", BONUS_RULES)
    phone = random_phone()
    _, first = join(client, pid, phone, name="Boris")
    done, second = join(client, pid, phone.replace("+7", "8"), name="Boris")
    assert first == second
    assert 'data-outcome="existing"' in client.get(done).text
    assert _counts(shop.merchant_id)[1] == 1
    assert shop.get(f"/api/v1/cards?phone={phone}").json()["items"][0]["balance"] == 100  # one welcome gift


def test_bad_input_is_explained_and_writes_nothing(client: TestClient, shop) -> None:
    pid = shop.program("bonus", BONUS_RULES)
    r = submit(client, pid, "12345", "?lang=en", name="A")
    assert r.status_code == 422 and "Enter a valid mobile phone number" in r.text
    r = submit(client, pid, "+7 916 000", "?lang=ru", name="A")
    assert r.status_code == 422 and "Введите правильный номер мобильного телефона" in r.text
    r = client.post(
        f"/join/{pid}?lang=en", data={"phone": random_phone(), "name": "A"}, follow_redirects=False
    )
    assert r.status_code == 422 and "Please agree to the processing of personal data" in r.text
    r = client.post(
        f"/join/{pid}?lang=ru",
        data={"phone": random_phone(), "personal_data": "yes", "birthday": "2990-01-01"},
    )
    assert r.status_code == 422 and "Введите настоящую дату рождения" in r.text
    r = submit(client, pid, random_phone(), website="http://spam.example")  # the honeypot
    assert r.status_code == 422
    assert _counts(shop.merchant_id) == (0, 0, 0)
    with db.read() as session:
        assert not session.scalar(
            select(func.count()).select_from(OtpChallenge).where(OtpChallenge.program_id == pid)
        )


def test_script_in_fields_is_escaped_everywhere(client: TestClient, shop) -> None:
    pid = shop.program("bonus", BONUS_RULES)
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    r = submit(client, pid, "nonsense", name=evil)  # re-rendered with the error
    assert r.status_code == 422 and "<script>alert" not in r.text and str(escape(evil)) in r.text
    _, card_path = join(client, pid, random_phone(), name=evil)
    page = client.get(card_path)
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_wrong_codes_then_locked(client: TestClient, shop) -> None:
    pid = shop.program("bonus", BONUS_RULES)
    phone = random_phone()
    verify = start(client, pid, phone)
    code = sms_code(phone)
    wrong = "000000" if code != "000000" else "111111"
    for left in range(rules.OTP_MAX_ATTEMPTS - 1, 0, -1):
        r = client.post(verify + "?lang=en", data={"code": wrong})
        assert r.status_code == 422 and f"Tries left: {left}." in r.text
    r = client.post(verify + "?lang=en", data={"code": wrong})
    assert r.status_code == 429 and "Too many wrong codes" in r.text
    r = client.post(verify + "?lang=en", data={"code": code})  # even the right one, now
    assert r.status_code == 429
    assert _counts(shop.merchant_id)[1] == 0
    assert _challenge(verify).attempts == rules.OTP_MAX_ATTEMPTS


def test_expired_code_and_resend(client: TestClient, shop) -> None:
    pid = shop.program("bonus", BONUS_RULES)
    phone = random_phone()
    verify = start(client, pid, phone)
    old = sms_code(phone)
    r = client.post(verify + "/resend?lang=en", follow_redirects=False)
    assert r.status_code == 429 and "before asking for a new code" in r.text  # the cooldown
    past = db.utcnow() - dt.timedelta(seconds=1)
    with db.transaction() as session:
        session.execute(
            update(OtpChallenge)
            .where(OtpChallenge.token == verify.rsplit("/", 1)[1])
            .values(expires_at=past, resend_at=past)
        )
    r = client.post(verify + "?lang=en", data={"code": old})
    assert r.status_code == 422 and "The code has expired" in r.text
    r = client.post(verify + "/resend", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("?notice=sent")
    new = sms_code(phone)
    ch = _challenge(verify)
    assert ch.sends == 2 and ch.resend_at > db.utcnow() + dt.timedelta(seconds=100)  # waits grow
    if new != old:
        r = client.post(verify, data={"code": old}, follow_redirects=False)
        assert r.status_code == 422  # the old code no longer works
    r = client.post(verify, data={"code": new}, follow_redirects=False)
    assert r.status_code == 303
    assert _counts(shop.merchant_id)[1] == 1


def test_rate_limits_per_phone_and_per_ip(client: TestClient, shop, monkeypatch) -> None:
    pid = shop.program("bonus", BONUS_RULES)
    phone = random_phone()
    for _ in range(5):
        start(client, pid, phone)
    r = submit(client, pid, phone, "?lang=en")
    assert r.status_code == 429 and "Too many codes were requested" in r.text
    with db.read() as session:
        index = phone_index(shop.merchant_id, phone)
        assert (
            session.scalar(
                select(func.count()).select_from(OtpChallenge).where(OtpChallenge.phone_index == index)
            )
            == 5
        )

    monkeypatch.setitem(rules.LIMITS, "sms_ip", (rules.Limit(rules.HOUR, 2),))
    other = TestClient(client.app, client=(f"198.51.100.{crypto.token(2)}", 1234))
    for _ in range(2):
        assert submit(other, pid, random_phone()).status_code == 303
    assert submit(other, pid, random_phone()).status_code == 429
    third = TestClient(client.app, client=(f"203.0.113.{crypto.token(2)}", 1234))
    assert submit(third, pid, random_phone()).status_code == 303  # another address is fine


def test_archived_and_unknown_programs(client: TestClient, shop) -> None:
    pid = shop.program("bonus", BONUS_RULES)
    phone = random_phone()
    verify = start(client, pid, phone)
    code = sms_code(phone)
    assert shop.call("PATCH", f"/api/v1/programs/{pid}", json={"status": "archived"}).status_code == 200
    r = client.get(f"/join/{pid}?lang=en")
    assert r.status_code == 410 and "no longer accepts new members" in r.text
    r = client.get(f"/join/{pid}?lang=ru")
    assert "больше не принимает новых участников" in r.text
    assert submit(client, pid, random_phone()).status_code == 410
    r = client.post(verify, data={"code": code})  # a code asked before the archiving
    assert r.status_code == 410
    assert _counts(shop.merchant_id)[1] == 0
    assert client.get("/join/999999999").status_code == 404
    assert client.get("/join/verify/nope").status_code == 404


def test_custom_form_settings_are_used(client: TestClient, shop) -> None:
    pid = shop.program("bonus", BONUS_RULES)
    body = {
        "fields": [
            {"key": "phone"},
            {"key": "name", "required": True},
            {"key": "city"},
            {
                "key": "custom",
                "id": "drink",
                "labels": {"ru": "Любимый напиток", "en": "Favourite drink"},
                "options": ["Latte", "Tea"],
            },
        ],
        "offer": "Кофе в подарок за регистрацию",
        "personal_data_text": "Согласен на обработку данных ООО «Зерно».",
        "ask_marketing": False,
    }
    r = shop.call("PUT", f"/api/v1/programs/{pid}/join-form", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["personal_data_version"] == rules.text_version(body["personal_data_text"])
    assert shop.call("PUT", f"/api/v1/programs/{pid}/join-form", role="cashier", json=body).status_code == 403
    bad = shop.call("PUT", f"/api/v1/programs/{pid}/join-form", json={"fields": [{"key": "name"}]})
    assert bad.status_code == 422 and bad.json()["code"] == "validation_error"
    page = client.get(f"/join/{pid}?lang=en")
    assert "Favourite drink" in page.text and "Кофе в подарок за регистрацию" in page.text
    assert 'name="birthday"' not in page.text and 'name="marketing"' not in page.text
    r = submit(client, pid, random_phone(), "?lang=en", name="Vera", custom_drink="Beer")
    assert r.status_code == 422 and "Choose one of the options" in r.text
    phone = random_phone()
    join(client, pid, phone, name="Vera", city="Москва", custom_drink="Tea")
    customer = shop.get(f"/api/v1/cards?phone={phone}").json()["items"][0]["customer"]
    with db.read() as session:
        from loyalwallet.customers.service import read_extra

        row = session.get(Customer, customer["id"])
        assert row is not None and read_extra(row) == {"city": "Москва", "drink": "Tea"}
        version = session.scalar(select(Consent.text_version).where(Consent.customer_id == row.id))
        assert version == rules.text_version(body["personal_data_text"])


def test_double_submit_of_the_code_is_harmless(client: TestClient, shop) -> None:
    pid = shop.program("bonus", BONUS_RULES)
    phone = random_phone()
    verify = start(client, pid, phone)
    code = sms_code(phone)
    first = client.post(verify, data={"code": code}, follow_redirects=False)
    again = client.post(verify, data={"code": code}, follow_redirects=False)
    assert first.status_code == again.status_code == 303
    assert client.get(verify, follow_redirects=False).status_code == 303
    assert _counts(shop.merchant_id)[1] == 1
    assert re.search(r"/join/done/", again.headers["location"])


def test_old_requests_and_counters_are_purged(client: TestClient, shop) -> None:
    from loyalwallet.enrollment.handlers import purge
    from loyalwallet.enrollment.models import RateHit

    pid = shop.program("bonus", BONUS_RULES)
    verify = start(client, pid, random_phone())
    token = verify.rsplit("/", 1)[1]
    purge(db.utcnow() + dt.timedelta(hours=1))
    assert _challenge(verify).token == token  # still fresh
    purge(db.utcnow() + dt.timedelta(days=2))
    with db.read() as session:
        assert session.scalar(select(OtpChallenge).where(OtpChallenge.token == token)) is None
        assert session.scalar(select(func.count()).select_from(RateHit)) == 0
