"""The setup checklist on the dashboard: each item says what is missing and links to its
page, ticks off as the café does it (the Apple, Google and SMS items are the doctor's own
findings for this merchant), and the block is gone once everything is done."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import delete, select, update

from loyalwallet import db
from loyalwallet.config import get_settings
from loyalwallet.fraud.service import set_telegram
from loyalwallet.merchants.actors import system
from loyalwallet.merchants.service import create_location, create_merchant
from loyalwallet.ops import checklist, doctor
from loyalwallet.programs.service import get_program, update_program
from loyalwallet.wallet.apple import certs, credentials
from loyalwallet.wallet.apple.models import AppleCertificate
from loyalwallet.wallet.google import issuer
from loyalwallet.wallet.google.keys import development_key_file
from loyalwallet.wallet.google.models import GoogleIssuer
from staff_support import add_staff, login
from support import Shop


@pytest.fixture
def no_installation_credentials() -> Iterator[None]:
    """No installation-wide Apple certificate or Google issuer during the test (other
    tests of the session may have made them); put back afterwards."""
    with db.transaction() as session:
        apple = session.scalars(
            select(AppleCertificate.id).where(
                AppleCertificate.merchant_id.is_(None), AppleCertificate.active.is_(True)
            )
        ).all()
        session.execute(update(AppleCertificate).where(AppleCertificate.id.in_(apple)).values(active=False))
        rows = session.scalars(select(GoogleIssuer).where(GoogleIssuer.merchant_id.is_(None))).all()
        google = [{c.key: getattr(r, c.key) for c in GoogleIssuer.__mapper__.column_attrs} for r in rows]
        session.execute(delete(GoogleIssuer).where(GoogleIssuer.merchant_id.is_(None)))
    issuer.reset_cache()
    yield
    with db.transaction() as session:
        session.execute(update(AppleCertificate).where(AppleCertificate.id.in_(apple)).values(active=True))
        session.add_all(GoogleIssuer(**values) for values in google)
    issuer.reset_cache()


@pytest.fixture
def empty_shop(client) -> Shop:
    """A merchant as `loyalwallet merchant create` leaves it: no programme, no location."""
    with db.transaction() as session:
        merchant = create_merchant(session, "Пустое кафе")
    return Shop(client=client, merchant_id=merchant.id, keys={})


def _items(merchant_id: int) -> dict[str, checklist.Item]:
    with db.read() as session:
        return {i.key: i for i in checklist.items(session, merchant_id)}


def _block(html: str) -> str:
    match = re.search(r'<section class="card setup" id="setup".*?</section>', html, re.S)
    return match.group(0) if match else ""


def _production_identity(pass_type_id: str, team_id: str) -> certs.PassIdentity:
    """A pass certificate issued, as far as its chain says, by Apple's WWDR G4."""
    dev = certs.development_chain(pass_type_id, team_id)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(
                NameOID.COMMON_NAME, "Apple Worldwide Developer Relations Certification Authority"
            ),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "G4"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Apple Inc."),
        ]
    )
    wwdr = certs._ca(name, key, name, key, 365, 0)
    return dataclasses.replace(dev, chain=(wwdr,), kind="production")


def test_checklist_walks_a_new_cafe_to_done(
    app, empty_shop: Shop, no_installation_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("LOYALWALLET_SMS_PROVIDER", "LOYALWALLET_TELEGRAM_BOT_TOKEN", "LOYALWALLET_GOOGLE_API_URL"):
        monkeypatch.delenv(name, raising=False)
    shop = empty_shop
    mid = shop.merchant_id
    owner = login(app, add_staff(shop, "owner"))

    # Day one: nothing done; every item says what is missing, in Russian, with its page.
    items = _items(mid)
    assert list(items) == [
        "program", "design", "location", "barista", "apple", "google", "sms", "telegram", "printed",
    ]  # fmt: skip
    assert not any(i.done for i in items.values())
    block = _block(owner.get("/admin", headers={"accept-language": "ru"}).text)
    assert "готово 0 из 9" in block
    for text, link in (
        ("Программы пока нет", "/admin/programs#new-program"),
        ("Точки пока нет", "/admin/locations"),
        ("У бариста пока нет входа", "/admin/staff"),
        ("Нет сертификата Apple", "/admin/wallets"),
        ("Не подключён издатель Google Wallet", "/admin/wallets"),
        ("SMS-коды только пишутся в журнал сервера", "/admin/sms"),
        ("Бот Telegram не настроен", "/admin/alerts#telegram"),
        ("QR-код для кассы ещё не скачан", "/admin/invite"),
    ):
        assert text in block and f'href="{link}"' in block, text
    # A manager sees the list, and which items are the owner's.
    manager = login(app, add_staff(shop, "manager"))
    assert "The owner does this." in _block(manager.get("/admin?lang=en").text)

    # A programme: ticked; its card still has the standard look.
    pid = shop_program(mid)
    items = _items(mid)
    assert items["program"].done and not items["design"].done
    assert items["design"].link == f"/admin/programs/{pid}/design"
    assert "стандартные цвета" in _block(owner.get("/admin").text)
    with db.transaction() as session:
        program = get_program(session, mid, pid)
        design = {
            **program.design,
            "colours": {"background": "#114477", "foreground": "#ffffff", "label": "#ddeeff"},
        }
        update_program(session, system(mid), program, design=design)
        create_location(session, system(mid), "Покровка")
    add_staff(shop, "cashier")
    items = _items(mid)
    assert items["design"].done and items["location"].done and items["barista"].done

    # Apple: the doctor's finding for this merchant decides. A development certificate is
    # not done (and says why); one issued by the WWDR G4 is.
    with db.transaction() as session:
        credentials.store_identity(session, certs.development_chain("pass.test.dev", "DEVTEAM001"), mid)
    items = _items(mid)
    assert not items["apple"].done and "development" in items["apple"].missing
    found = doctor.run(  # what `loyalwallet doctor` says of it
        [doctor.apple_certificate],
        doctor.Context(get_settings(), database_ok=True, merchant_id=mid, network=False),
    )
    assert [f.reason for f in found] == ["development"]
    with db.transaction() as session:
        credentials.store_identity(session, _production_identity("pass.test.cafe", "CAFETEAM01"), mid)
    assert _items(mid)["apple"].done

    # Google: a development key is not done; a real one is (stored; `doctor` tests it live).
    with db.transaction() as session:
        issuer.import_key(
            session, development_key_file("test-project"), "3388000000012345678", mid, development=True
        )
    assert "development key" in _items(mid)["google"].missing
    with db.transaction() as session:
        issuer.import_key(session, development_key_file("test-project"), "3388000000012345678", mid)
    assert _items(mid)["google"].done

    # SMS: the console is not a provider for real guests; SMS.ru is (no call made here).
    monkeypatch.setenv("LOYALWALLET_SMS_PROVIDER", "smsru")
    monkeypatch.setenv("LOYALWALLET_SMSRU_API_ID", "test-key")
    assert _items(mid)["sms"].done

    # Telegram: a bot without a chat says so; with the chat, done.
    with db.transaction() as session:
        set_telegram(session, system(mid), {"bot_token": "123456:ABCdefGHIjklMNOpqrSTUvwxYZ012345678"})
    assert "not linked" in _items(mid)["telegram"].missing
    with db.transaction() as session:
        set_telegram(session, system(mid), {"chat_id": "424242"})
    assert _items(mid)["telegram"].done

    # The last item: the owner downloads the table tent. Then the block is gone.
    assert "готово 8 из 9" in _block(owner.get("/admin").text)
    assert owner.get(f"/admin/programs/{pid}/invite/tent-a6.pdf").status_code == 200
    assert all(i.done for i in _items(mid).values())
    page = owner.get("/admin")
    assert page.status_code == 200 and 'id="setup"' not in page.text


def shop_program(merchant_id: int) -> int:
    from loyalwallet.programs.service import create_program

    with db.transaction() as session:
        program = create_program(
            session, system(merchant_id), "stamp", "Кофейная карта", {"stamps_required": 6}
        )
        return program.id
