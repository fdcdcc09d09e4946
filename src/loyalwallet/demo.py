"""The demo coffee shop `loyalwallet demo` seeds: programs, an owner, a cashier key, guests."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

from sqlalchemy import select

from loyalwallet import crypto, db
from loyalwallet.cards.service import enroll
from loyalwallet.checkout.schemas import PurchaseIn
from loyalwallet.checkout.service import purchase
from loyalwallet.customers.service import GuestData
from loyalwallet.merchants.actors import Actor, system
from loyalwallet.merchants.models import Merchant
from loyalwallet.merchants.service import create_api_key, create_location, create_merchant, create_staff
from loyalwallet.programs.service import create_program
from loyalwallet.wallet.google.service import ensure_development_issuer

DEMO_FILE = "demo.json"
OWNER_LOGIN = "owner@demo.coffee"
CASHIER_LOGIN = "barista@demo.coffee"

BONUS_RULES: dict[str, Any] = {
    "tiers": [
        {"name": "Bronze", "min_spend": 0, "cashback_pct": 5},
        {"name": "Silver", "min_spend": 1_000_000, "cashback_pct": 7},
        {"name": "Gold", "min_spend": 3_000_000, "cashback_pct": 10},
    ],
    "welcome_points": 100,
    "birthday_points": 200,
    "referral_points": 100,
    "max_redeem_pct": 50,
    "ttl_days": 365,
}
STAMP_RULES: dict[str, Any] = {
    "stamps_required": 6,
    "reward": {"kind": "free_item", "name": "Free coffee / Кофе в подарок", "category": "coffee"},
}

# How the demo cards look in the wallets (programs/design.py).
_CONTACTS: dict[str, Any] = {
    "address": "Москва, ул. Покровка, 17",
    "phone": "+7 495 123-45-67",
    "links": [{"label": "Menu / Меню", "url": "https://example.com/menu"}],
}
BONUS_DESIGN: dict[str, Any] = {
    "logo_text": "Зерно",
    "colours": {"background": "#3b2a20", "foreground": "#ffffff", "label": "#f3d9b1"},
    "front_fields": ["balance", "tier", "holder", "next_tier"],
    "terms": "5-10 % of every check back in points; points pay up to half a check and live a year.",
    "tiers": {
        "Silver": {"colours": {"background": "#4a4f57", "foreground": "#ffffff", "label": "#d9dde3"}},
        "Gold": {"colours": {"background": "#8a6a1f", "foreground": "#ffffff", "label": "#f7e7b4"}},
    },
    **_CONTACTS,
}
STAMP_DESIGN: dict[str, Any] = {
    "logo_text": "Зерно",
    "colours": {"background": "#1f3b2d", "foreground": "#ffffff", "label": "#cfe8d5"},
    "front_fields": ["stamps", "rewards", "holder"],
    "stamp_style": "cup",
    "terms": "Every coffee is a stamp; the sixth is on us.",
    **_CONTACTS,
}

GUESTS = [
    ("+79160000001", "Анна"),
    ("+79160000002", "Борис"),
    ("+79160000003", "Вера"),
    ("+79160000004", "Глеб"),
    ("+79160000005", "Дарья"),
]


def seed(data_dir: Path) -> dict[str, Any]:
    """Create the demo shop unless it is there; returns what to print (credentials)."""
    path = data_dir / DEMO_FILE
    if path.exists():
        return json.loads(path.read_text())
    owner_password = crypto.token(9)
    cashier_password = crypto.token(9)
    with db.transaction() as session:
        merchant = create_merchant(session, "Кофейня «Зерно»", "RUB", "Europe/Moscow")
        owner = system(merchant.id)
        location = create_location(
            session, owner, "Зерно на Покровке", "Москва, ул. Покровка, 17", 55.7597, 37.6468, "+74951234567"
        )
        create_staff(session, merchant.id, OWNER_LOGIN, owner_password, "owner", "Owner / Владелец")
        create_staff(
            session,
            merchant.id,
            CASHIER_LOGIN,
            cashier_password,
            "cashier",
            "Barista / Бариста",
            [location.id],
        )
        bonus = create_program(session, owner, "bonus", "Зерно Бонус", BONUS_RULES, BONUS_DESIGN)
        stamp = create_program(session, owner, "stamp", "Шестой кофе в подарок", STAMP_RULES, STAMP_DESIGN)
        counter = _seed_channels(session, owner, bonus.id, stamp.id, location.id)
        _, cashier_key = create_api_key(session, merchant.id, "Demo POS", "cashier", location.id)
        _, owner_key = create_api_key(session, merchant.id, "Demo owner key", "owner")
        merchant_id, bonus_id, stamp_id, location_id = merchant.id, bonus.id, stamp.id, location.id
    _seed_guests(merchant_id, bonus_id, stamp_id, location_id)
    _seed_campaigns(merchant_id, bonus_id)
    with db.transaction() as session:
        # A generated key so the Google links can be shown; Google itself refuses them.
        google = ensure_development_issuer(session)
        google_dev_issuer = google.issuer_id if google is not None and google.development else None
    info = {
        "merchant_id": merchant_id,
        "owner_login": OWNER_LOGIN,
        "owner_password": owner_password,
        "cashier_login": CASHIER_LOGIN,
        "cashier_password": cashier_password,
        "cashier_api_key": cashier_key,
        "owner_api_key": owner_key,
        "bonus_program_id": bonus_id,
        "stamp_program_id": stamp_id,
        "counter_qr_url": counter,
        "google_dev_issuer": google_dev_issuer,
    }
    path.write_text(json.dumps(info, indent=2, ensure_ascii=False))
    path.chmod(0o600)
    return info


def _seed_channels(session: Any, owner: Actor, bonus_id: int, stamp_id: int, location_id: int) -> str:
    """Where guests come from: the counter QR (installs a card at once), table tents, the
    website widget, Instagram. Returns the counter QR's short link."""
    from loyalwallet.config import get_settings
    from loyalwallet.enrollment.service import create_channel

    counter = create_channel(
        session,
        owner,
        {
            "program_id": bonus_id,
            "kind": "counter_qr",
            "name": "Касса на Покровке",
            "location_id": location_id,
            "invitation": True,
        },
    )
    create_channel(
        session,
        owner,
        {
            "program_id": bonus_id,
            "kind": "table_tent",
            "name": "Столики",
            "location_id": location_id,
            "offer": "100 баллов в подарок",
        },
    )
    create_channel(session, owner, {"program_id": bonus_id, "kind": "website_widget", "name": "Сайт"})
    create_channel(
        session, owner, {"program_id": stamp_id, "kind": "instagram", "name": "Instagram, шапка профиля"}
    )
    return f"{get_settings().base_url}/j/{counter.token}"


def _seed_guests(merchant_id: int, bonus_id: int, stamp_id: int, location_id: int) -> None:
    rng = random.Random(7)
    actor = Actor(merchant_id=merchant_id, role="cashier", kind="system", location_id=location_id)
    from loyalwallet.programs.models import Program

    for phone, name in GUESTS:
        with db.transaction() as session:
            bonus = session.get(Program, bonus_id)
            stamp = session.get(Program, stamp_id)
            assert bonus and stamp
            guest = GuestData(
                phone=phone, name=name, birthday=dt.date(1990, rng.randint(1, 12), rng.randint(1, 28))
            )
            bonus_card, _ = enroll(session, actor, bonus, guest, channel="counter")
            stamp_card, _ = enroll(session, actor, stamp, guest, channel="counter")
            codes = (bonus_card.code, stamp_card.code)
        for _ in range(rng.randint(1, 4)):
            amount = rng.choice([18000, 25000, 32000, 45000, 61000])
            for code in codes:
                with db.transaction() as session:
                    body = PurchaseIn(
                        card=code,
                        amount=amount,
                        items=[
                            {"sku": "LATTE", "name": "Латте", "category": "coffee", "qty": 1, "price": amount}
                        ],
                    )
                    purchase(session, actor, body)


def _seed_campaigns(merchant_id: int, bonus_id: int) -> None:
    """Offers, automatic triggers, printed certificates and a draft campaign; three of
    the demo guests agreed to marketing."""
    from loyalwallet.campaigns import offers, service, triggers
    from loyalwallet.customers.models import Customer
    from loyalwallet.customers.service import record_consent

    owner = system(merchant_id)
    with db.transaction() as session:
        customers = session.scalars(
            select(Customer).where(Customer.merchant_id == merchant_id).order_by(Customer.id).limit(3)
        ).all()
        for customer in customers:
            record_consent(session, customer, "marketing", True, "demo-1", "import")
        dessert = offers.create_offer(
            session,
            owner,
            {"name": "Десерт в подарок", "kind": "free_item", "category": "dessert", "valid_days": 14},
        )
        coffee = offers.create_offer(
            session,
            owner,
            {"name": "Кофе в подарок", "kind": "free_item", "category": "coffee", "valid_days": 10},
        )
        happy = offers.create_offer(
            session, owner, {"name": "−20 % в счастливые часы", "kind": "percent_off", "pct": 20}
        )
        certificate = offers.create_offer(
            session,
            owner,
            {"name": "Подарочный сертификат 500 ₽", "kind": "fixed_off", "value": 50_000, "valid_days": 365},
        )
        offers.create_batch(session, owner, certificate.id, 24, "Сертификаты к Новому году")
        message = {"header": "Зерно", "body": ""}
        triggers.create(
            session,
            owner,
            "welcome",
            "Приветствие",
            {"message": {**message, "body": "Добро пожаловать! Копите баллы с каждой покупки"}},
        )
        triggers.create(
            session,
            owner,
            "birthday",
            "День рождения",
            {
                "days_before": 3,
                "offer_id": dessert.id,
                "message": {
                    **message,
                    "body": "С наступающим днём рождения! {points} баллов и десерт в подарок",
                },
            },
            program_id=bonus_id,
        )
        triggers.create(
            session,
            owner,
            "points_expiring",
            "Сгорают баллы",
            {"days_before": 14, "message": {**message, "body": "{points} баллов сгорят {date} — приходите!"}},
            program_id=bonus_id,
        )
        triggers.create(
            session,
            owner,
            "lapsed",
            "Скучаем",
            {
                "days": 30,
                "max_days": 180,
                "offer_id": coffee.id,
                "message": {**message, "body": "Давно не виделись! Кофе за наш счёт"},
            },
        )
        triggers.create(
            session,
            owner,
            "tier_up",
            "Новый уровень",
            {"message": {**message, "body": "Поздравляем: теперь у вас уровень {tier}!"}},
            program_id=bonus_id,
        )
        triggers.create(
            session,
            owner,
            "happy_hour",
            "Счастливые часы",
            {
                "weekdays": [1, 2, 3, 4, 5],
                "start": "15:00",
                "end": "17:00",
                "offer_id": happy.id,
                "message": {**message, "body": "Счастливые часы: −20 % до {end}"},
            },
        )
        service.create(
            session,
            owner,
            {
                "name": "Осеннее меню",
                "header": "Осеннее меню",
                "body": "Тыквенный латте вернулся — и 50 баллов к нему",
                "points": 50,
                "holdout_pct": 10,
            },
        )


def demo_merchant_exists() -> bool:
    with db.read() as session:
        return session.scalar(select(Merchant.id).limit(1)) is not None
