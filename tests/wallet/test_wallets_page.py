"""The owner's Wallets page: Apple and Google keys uploaded through the browser (the same
services as the command line), bad files refused with a clear message and nothing stored,
and "send a test update to my card" answering with what the fake APNs and the fake Google
said."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select, update

from fakes.apns import FakeApns
from fakes.google_wallet import FakeGoogleWallet
from fakes.wallet_device import Device
from loyalwallet import db
from loyalwallet.cards.models import Card
from loyalwallet.outbox.models import OutboxMessage
from loyalwallet.wallet.apple import certs, credentials
from loyalwallet.wallet.apple.models import AppleCertificate, ApplePushKey
from loyalwallet.wallet.google import client as google_client
from loyalwallet.wallet.google.issuer import remove_issuer, reset_cache
from loyalwallet.wallet.google.models import GoogleIssuer
from staff_support import add_staff, csrf_of, login
from support import Shop
from wallet.google.helpers import new_key

PASS_TYPE = "pass.test.wallets"
TEAM = "WALLETS001"
KEY_ID = "WKEY000001"


@pytest.fixture(scope="module")
def chain() -> certs.PassIdentity:
    return certs.development_chain(PASS_TYPE, TEAM)


@pytest.fixture(scope="module")
def team_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def fake_apns(
    team_key: ec.EllipticCurvePrivateKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeApns]:
    fake = FakeApns(
        tmp_path / "apns", team_key=team_key.public_key(), key_id=KEY_ID, team_id=TEAM, topic=PASS_TYPE
    )
    fake.start()
    monkeypatch.setenv("LOYALWALLET_APNS_URL", fake.url)
    monkeypatch.setenv("LOYALWALLET_APNS_CA_FILE", fake.ca_file)
    credentials.reset_caches()
    yield fake
    credentials.reset_caches()
    fake.stop()


@pytest.fixture
def fake_google(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGoogleWallet]:
    fake = FakeGoogleWallet().start()
    monkeypatch.setenv("LOYALWALLET_GOOGLE_API_URL", fake.api_url)
    monkeypatch.setenv("LOYALWALLET_GOOGLE_TOKEN_URL", fake.token_url)
    monkeypatch.setenv("LOYALWALLET_GOOGLE_TIMEOUT", "2")
    google_client.clear_tokens()
    reset_cache()
    yield fake
    fake.stop()
    google_client.clear_tokens()
    reset_cache()


def _p12(identity: certs.PassIdentity, password: bytes, with_wwdr: bool = True) -> bytes:
    return serialization.pkcs12.serialize_key_and_certificates(
        b"Pass Type ID",
        identity.key,
        identity.cert,
        [identity.wwdr] if with_wwdr else None,
        serialization.BestAvailableEncryption(password),
    )


def _expiring(days: int) -> certs.PassIdentity:
    """A pass certificate shaped like Apple's that expires in `days` days."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    keys = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2)]
    mid_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test WWDR")])
    mid = certs._ca(mid_name, keys[0], mid_name, keys[0], 3650, 0)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.USER_ID, "pass.test.expiring"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "EXPIRING01"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(mid_name)
        .public_key(keys[1].public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(keys[0], hashes.SHA256())
    )
    return certs.check(cert, keys[1], [mid])


def _count(model: Any, merchant_id: int) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).where(model.merchant_id == merchant_id)) or 0)


def _file(name: str, data: bytes) -> dict[str, Any]:
    return {"name": name, "mimeType": "application/octet-stream", "buffer": data}


def _cleanup(shop: Shop) -> None:
    with db.transaction() as session:
        remove_issuer(session, shop.merchant_id)
        session.execute(
            update(AppleCertificate)
            .where(AppleCertificate.merchant_id == shop.merchant_id)
            .values(active=False)
        )
        session.execute(update(ApplePushKey).where(ApplePushKey.team_id == TEAM).values(active=False))
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.merchant_id == shop.merchant_id, OutboxMessage.status == "pending")
            .values(status="done")
        )
    credentials.reset_caches()


def test_only_the_owner_opens_the_settings_pages(app: Any, shop: Shop) -> None:
    manager = login(app, add_staff(shop, "manager"))
    for path in ("/admin/wallets", "/admin/sms"):
        assert manager.get(path).status_code == 403, path
    page = manager.get("/admin/alerts")
    r = manager.post(
        "/admin/wallets/google",
        data={"csrf": csrf_of(page.text), "issuer_id": "3388000000012345678"},
        files={"key_file": ("key.json", b"{}", "application/json")},
    )
    assert r.status_code == 403
    assert _count(GoogleIssuer, shop.merchant_id) == 0
    r = manager.post("/admin/sms", data={"csrf": csrf_of(page.text), "provider": "smsru", "api_id": "x"})
    assert r.status_code == 403
    owner = login(app, add_staff(shop, "owner"))
    r = owner.get("/admin/wallets")
    assert r.status_code == 200 and 'id="apple-form"' in r.text
    assert "/admin/wallets" in r.text and "/admin/sms" in r.text  # in the owner's sections


def test_a_bad_file_is_explained_in_russian_and_stores_nothing(app: Any, shop: Shop) -> None:
    owner = login(app, add_staff(shop, "owner"))
    csrf = csrf_of(owner.get("/admin/wallets").text)
    r = owner.post(
        "/admin/wallets/apple?lang=ru",
        data={"csrf": csrf, "password": "x"},
        files={"p12": ("pass.p12", b"hello, I am a text file", "application/x-pkcs12")},
    )
    assert r.status_code == 422
    assert "это не файл .p12 (PKCS#12)" in r.text
    r = owner.post(
        "/admin/wallets/google?lang=ru",
        data={"csrf": csrf, "issuer_id": "3388000000012345678"},
        files={
            "key_file": ("key.json", json.dumps({"type": "service_account"}).encode(), "application/json")
        },
    )
    assert (
        r.status_code == 422
        and "client_email" in r.text
        and "файл ключа сервисного аккаунта не подходит" in r.text
    )
    big = b"0" * (65 * 1024)
    r = owner.post(
        "/admin/wallets/apple?lang=en",
        data={"csrf": csrf},
        files={"p12": ("huge.p12", big, "application/x-pkcs12")},
    )
    assert r.status_code == 422 and "larger than 64 KB" in r.text
    assert _count(AppleCertificate, shop.merchant_id) == 0
    assert _count(GoogleIssuer, shop.merchant_id) == 0


def test_a_certificate_close_to_its_end_is_flagged(app: Any, shop: Shop) -> None:
    owner = login(app, add_staff(shop, "owner"))
    csrf = csrf_of(owner.get("/admin/wallets").text)
    try:
        r = owner.post(
            "/admin/wallets/apple?lang=en",
            data={"csrf": csrf, "password": "pw"},
            files={"p12": ("pass.p12", _p12(_expiring(10), b"pw"), "application/x-pkcs12")},
            follow_redirects=True,
        )
        assert r.status_code == 200 and "pass.test.expiring" in r.text
        assert 'id="apple-expiry-warning"' in r.text and "обновите его в Apple" in r.text
    finally:
        _cleanup(shop)


@pytest.mark.browser
def test_upload_keys_and_send_a_test_update_in_the_browser(
    page: Any,
    live_server: Any,
    shop: Shop,
    chain: certs.PassIdentity,
    team_key: ec.EllipticCurvePrivateKey,
    fake_apns: FakeApns,
    fake_google: FakeGoogleWallet,
) -> None:
    owner = add_staff(shop, "owner")
    page.goto(f"{live_server.url}/login?next=/admin/wallets")
    page.fill("#login", owner.login)
    page.fill("#password", owner.password)
    page.click("button[type=submit]")
    page.wait_for_url("**/admin/wallets")
    try:
        # Bad files: a wrong password; a certificate without the WWDR intermediate.
        page.set_input_files("#w-p12", files=[_file("pass.p12", _p12(chain, b"s3cret"))])
        page.fill("#w-password", "wrong")
        page.click("#apple-form button[type=submit]")
        assert "wrong password" in page.locator("#wallets-error").inner_text()
        key_pem = chain.key_pem().encode()
        page.set_input_files("#w-cert", files=[_file("pass.pem", chain.cert_pem().encode())])
        page.set_input_files("#w-key", files=[_file("key.pem", key_pem)])
        page.click("#apple-form button[type=submit]")
        assert "AppleWWDRCAG4" in page.locator("#wallets-error").inner_text()
        assert _count(AppleCertificate, shop.merchant_id) == 0

        # The .p12 with its password.
        page.set_input_files("#w-p12", files=[_file("pass.p12", _p12(chain, b"s3cret"))])
        page.fill("#w-password", "s3cret")
        page.click("#apple-form button[type=submit]")
        page.wait_for_selector("#apple-pass-type")
        assert page.locator("#apple-pass-type").inner_text() == PASS_TYPE
        assert page.locator("#apple-team").inner_text() == TEAM
        assert chain.not_after.strftime("%Y-%m-%d") in page.locator("#apple-expiry").inner_text()
        assert page.locator("#apple-expiry-warning").count() == 0  # 825 days left
        assert "HTTPS" in page.locator("#apple-updates").inner_text()  # http://testserver: no live updates
        with db.read() as session:
            row = session.scalar(
                select(AppleCertificate).where(
                    AppleCertificate.merchant_id == shop.merchant_id, AppleCertificate.active.is_(True)
                )
            )
            assert row is not None and key_pem not in row.key_enc  # sealed

        # The APNs key: a wrong key id first (kept in the form), then the right one.
        p8 = team_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        page.set_input_files("#w-p8", files=[_file(f"AuthKey_{KEY_ID}.p8", p8)])
        page.fill("#w-key-id", "short")
        page.click("#push-form button[type=submit]")
        assert "10 letters and digits" in page.locator("#wallets-error").inner_text()
        assert page.input_value("#w-key-id") == "short" and page.input_value("#w-team-id") == TEAM
        page.set_input_files("#w-p8", files=[_file(f"AuthKey_{KEY_ID}.p8", p8)])
        page.fill("#w-key-id", KEY_ID)
        page.click("#push-form button[type=submit]")
        page.wait_for_selector("text=APNs key saved")

        # Google: a JSON without private_key, then the real key file with the issuer id.
        key_file, public = new_key()
        fake_google.register(json.loads(key_file)["client_email"], public)
        broken = {k: v for k, v in json.loads(key_file).items() if k != "private_key"}
        page.fill("#w-issuer", fake_google.issuer_id)
        page.set_input_files("#w-json", files=[_file("key.json", json.dumps(broken).encode())])
        page.click("#google-form button[type=submit]")
        assert '"private_key" is missing' in page.locator("#wallets-error").inner_text()
        assert page.input_value("#w-issuer") == fake_google.issuer_id
        assert _count(GoogleIssuer, shop.merchant_id) == 0
        page.set_input_files("#w-json", files=[_file("key.json", key_file.encode())])
        page.click("#google-form button[type=submit]")
        page.wait_for_selector("text=Google Wallet key saved")
        assert fake_google.issuer_id in page.locator("#google-issuer").inner_text()

        # The owner's card, on an iPhone and with a Google save link.
        code = shop.card(shop.program("bonus"))["code"]
        with db.read() as session:
            card = session.scalar(select(Card).where(Card.code == code))
            assert card is not None
            serial, auth = card.serial, card.auth_token
        device = Device(shop.client)
        assert device.register(PASS_TYPE, serial, auth).status_code == 201
        fake_apns.reset()
        page.fill("#w-card", "0000000000000")
        page.click("#test-send")
        assert "no card with the code" in page.locator("#wallets-error").inner_text()
        page.fill("#w-card", code)
        page.click("#test-send")
        page.wait_for_selector("#test-result")
        assert "APNs accepted the push" in page.locator("#test-apple").inner_text()
        assert "Google accepted the update" in page.locator("#test-google").inner_text()
        assert fake_apns.tokens() == [device.push_token]  # APNs really got it
        assert fake_google.calls_to("POST", "loyaltyObject") or fake_google.calls_to("PATCH", "loyaltyObject")
        # APNs refuses the device now: the page says so with APNs's own reason.
        fake_apns.answer(device.push_token, 400, "DeviceTokenNotForTopic")
        page.click("#test-send")
        page.wait_for_selector("#test-result")
        text = page.locator("#test-apple").inner_text()
        assert "APNs refused the push" in text and "DeviceTokenNotForTopic" in text
    finally:
        _cleanup(shop)
