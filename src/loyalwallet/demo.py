"""The demo coffee shop `loyalwallet demo` seeds: programs, an owner, a cashier key, and
half a year of guests and purchases, so the dashboard has real shapes to show.

The history is planned by pure functions (seeded random, relative to one `now`) and then
played through the real services (card issuing, checkout purchase and refund) with the
clock set back, so the ledger, the cached card figures and the rollups are exactly what
the same visits would have produced live.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import random
import zoneinfo
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select

from loyalwallet import crypto, db
from loyalwallet.cards.service import enroll
from loyalwallet.checkout.schemas import PurchaseIn, RefundIn
from loyalwallet.checkout.service import purchase, refund
from loyalwallet.config import DEMO_FILE
from loyalwallet.customers.service import GuestData, record_consent
from loyalwallet.merchants.actors import Actor, system
from loyalwallet.merchants.models import Merchant
from loyalwallet.merchants.service import (
    actor_for_api_key,
    create_api_key,
    create_location,
    create_merchant,
    create_staff,
)
from loyalwallet.programs.service import create_program
from loyalwallet.wallet.google.issuer import ensure_development_issuer

OWNER_LOGIN = "owner@demo.coffee"
CASHIER_LOGIN = "barista@demo.coffee"
TIMEZONE = "Europe/Moscow"

BONUS_RULES: dict[str, Any] = {
    "tiers": [
        {"name": "Бронза", "min_spend": 0, "cashback_pct": 5},
        {"name": "Серебро", "min_spend": 300_000, "cashback_pct": 7},
        {"name": "Золото", "min_spend": 700_000, "cashback_pct": 10},
    ],
    "welcome_points": 100,
    "birthday_points": 200,
    "referral_points": 100,
    "max_redeem_pct": 50,
    "ttl_days": 365,
}
STAMP_RULES: dict[str, Any] = {
    "stamps_required": 6,
    "reward": {
        "kind": "free_item",
        "name": "Кофе в подарок / Free coffee",
        "category": "coffee",
        "value": 30_000,
    },
}

# How the demo cards look in the wallets (programs/design.py). Texts in Russian first,
# then English: the guests of «Зерно» read Russian, a visitor of the demo may not.
_CONTACTS: dict[str, Any] = {
    "address": "Москва, ул. Покровка, 17",
    "phone": "+7 495 123-45-67",
    "links": [{"label": "Меню / Menu", "url": "https://example.com/menu"}],
}
BONUS_DESIGN: dict[str, Any] = {
    "logo_text": "Зерно",
    "colours": {"background": "#3b2a20", "foreground": "#ffffff", "label": "#f3d9b1"},
    "front_fields": ["balance", "tier", "holder", "next_tier"],
    "terms": (
        "5–10 % каждого чека возвращаются баллами: Бронза 5 %, Серебро 7 % (от 3 000 ₽ покупок), "
        "Золото 10 % (от 7 000 ₽). 1 балл = 1 ₽; баллами можно оплатить до половины чека; "
        "баллы живут год.\n\n"
        "5–10 % of every check back in points: Bronze 5 %, Silver 7 % (from 3,000 ₽ spent), "
        "Gold 10 % (from 7,000 ₽). 1 point = 1 ₽; points pay up to half a check and live a year."
    ),
    "tiers": {
        "Серебро": {"colours": {"background": "#4a4f57", "foreground": "#ffffff", "label": "#d9dde3"}},
        "Золото": {"colours": {"background": "#8a6a1f", "foreground": "#ffffff", "label": "#f7e7b4"}},
    },
    **_CONTACTS,
}
STAMP_DESIGN: dict[str, Any] = {
    "logo_text": "Зерно",
    "colours": {"background": "#1f3b2d", "foreground": "#ffffff", "label": "#cfe8d5"},
    "front_fields": ["stamps", "rewards", "holder"],
    "stamp_style": "cup",
    "terms": (
        "Штамп за каждую покупку; пять штампов — и шестой кофе в подарок.\n\n"
        "A stamp for every purchase; five stamps and the sixth coffee is on us."
    ),
    **_CONTACTS,
}

# The five guests of the README's examples (both cards, regulars); the rest are planned.
GUESTS = [
    ("+79160000001", "Анна"),
    ("+79160000002", "Борис"),
    ("+79160000003", "Вера"),
    ("+79160000004", "Глеб"),
    ("+79160000005", "Дарья"),
]


def seed(data_dir: Path, now: dt.datetime | None = None) -> dict[str, Any]:
    """Create the demo shop unless it is there; returns what to print (credentials)."""
    path = data_dir / DEMO_FILE
    if path.exists():
        return json.loads(path.read_text())
    info = create_shop(now or db.utcnow())
    with db.transaction() as session:
        # A generated key so the Google links can be shown; Google itself refuses them.
        google = ensure_development_issuer(session)
        info["google_dev_issuer"] = google.issuer_id if google is not None and google.development else None
    path.write_text(json.dumps(info, indent=2, ensure_ascii=False))
    path.chmod(0o600)
    return info


def create_shop(now: dt.datetime) -> dict[str, Any]:
    """The coffee shop, its staff, programs and channels, half a year of guests leading up
    to `now`, offers and triggers. Returns the credentials and ids."""
    owner_password = crypto.token(9)
    cashier_password = crypto.token(9)
    with db.transaction() as session:
        merchant = create_merchant(session, "Кофейня «Зерно»", "RUB", TIMEZONE)
        owner = system(merchant.id)
        location = create_location(
            session, owner, "Зерно на Покровке", "Москва, ул. Покровка, 17", 55.7597, 37.6468, "+74951234567"
        )
        create_staff(session, merchant.id, OWNER_LOGIN, owner_password, "owner", "Владелец / Owner")
        create_staff(
            session,
            merchant.id,
            CASHIER_LOGIN,
            cashier_password,
            "cashier",
            "Бариста / Barista",
            [location.id],
        )
        bonus = create_program(session, owner, "bonus", "Зерно Бонус", BONUS_RULES, BONUS_DESIGN)
        stamp = create_program(session, owner, "stamp", "Шестой кофе в подарок", STAMP_RULES, STAMP_DESIGN)
        counter = _seed_channels(session, owner, bonus.id, stamp.id, location.id)
        _, cashier_key = create_api_key(session, merchant.id, "Demo POS", "cashier", location.id)
        _, owner_key = create_api_key(session, merchant.id, "Demo owner key", "owner")
        merchant_id, bonus_id, stamp_id, location_id = merchant.id, bonus.id, stamp.id, location.id
        # The history is rung up by the POS through its key, as the API would.
        till = actor_for_api_key(session, cashier_key)
        assert till is not None
    _seed_history(till, {"bonus": bonus_id, "stamp": stamp_id}, plan_history(now, random.Random(7)))
    _seed_campaigns(merchant_id, bonus_id)
    return {
        "merchant_id": merchant_id,
        "owner_login": OWNER_LOGIN,
        "owner_password": owner_password,
        "cashier_login": CASHIER_LOGIN,
        "cashier_password": cashier_password,
        "cashier_api_key": cashier_key,
        "owner_api_key": owner_key,
        "bonus_program_id": bonus_id,
        "stamp_program_id": stamp_id,
        "location_id": location_id,
        "counter_qr_url": counter,
    }


# Channel slugs (cards.channel) and the program each one enrols into; "cashier" is a
# card the barista issued at the till.
CARD_PROGRAM = {
    "counter": "bonus",
    "tables": "bonus",
    "website": "bonus",
    "instagram": "stamp",
    "cashier": "stamp",
}


def _seed_channels(session: Any, owner: Actor, bonus_id: int, stamp_id: int, location_id: int) -> str:
    """Where guests come from: the counter QR (installs a card at once), table tents, the
    website widget, Instagram. Returns the counter QR's short link."""
    from loyalwallet.config import get_settings
    from loyalwallet.enrollment.channels import create_channel

    counter = create_channel(
        session,
        owner,
        {
            "program_id": bonus_id,
            "kind": "counter_qr",
            "slug": "counter",
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
            "slug": "tables",
            "name": "Столики",
            "location_id": location_id,
            "offer": "100 баллов в подарок",
        },
    )
    create_channel(
        session, owner, {"program_id": bonus_id, "kind": "website_widget", "slug": "website", "name": "Сайт"}
    )
    create_channel(
        session,
        owner,
        {
            "program_id": stamp_id,
            "kind": "instagram",
            "slug": "instagram",
            "name": "Instagram, шапка профиля",
        },
    )
    return f"{get_settings().base_url}/j/{counter.token}"


# --- the planned history (pure) ------------------------------------------------------------

HISTORY_DAYS = 182  # guests joined over the last half year
POS_LINES_DAYS = 75  # the POS has sent check lines (items) since then; before, amounts only
GUEST_COUNT = 140
CONSENT_VERSION = "demo-1"


@dataclasses.dataclass(frozen=True)
class Item:
    sku: str
    name: str
    category: str
    price: int  # kopecks

    def line(self) -> dict[str, Any]:
        return {"sku": self.sku, "name": self.name, "category": self.category, "qty": 1, "price": self.price}


MENU: dict[str, tuple[Item, ...]] = {
    "coffee": (
        Item("ESP", "Эспрессо", "coffee", 15_000),
        Item("AME", "Американо", "coffee", 18_000),
        Item("CAP", "Капучино", "coffee", 24_000),
        Item("LAT", "Латте", "coffee", 26_000),
        Item("FLW", "Флэт уайт", "coffee", 27_000),
        Item("RAF", "Раф", "coffee", 29_000),
    ),
    "tea": (Item("TEA", "Чай", "tea", 17_000), Item("MAT", "Матча латте", "tea", 28_000)),
    "dessert": (
        Item("COO", "Печенье", "dessert", 12_000),
        Item("CRO", "Круассан", "dessert", 19_000),
        Item("CHC", "Чизкейк", "dessert", 32_000),
    ),
    "food": (Item("SAN", "Сэндвич", "food", 39_000), Item("QUI", "Киш", "food", 42_000)),
}
COFFEE_WEIGHTS = (1, 3, 5, 5, 3, 2)
HOUR_WEIGHTS = {8: 6, 9: 9, 10: 7, 11: 5, 12: 7, 13: 8, 14: 6, 15: 5, 16: 6, 17: 6, 18: 5, 19: 4, 20: 3}
PROFILES = {"regular": 20, "occasional": 32, "lapsed": 14, "once": 26, "never": 8}
CHANNEL_SHARES = {"counter": 42, "tables": 24, "website": 12, "instagram": 22}
FIRST_NAMES = [
    "Мария",
    "Елена",
    "Ольга",
    "Наталья",
    "Ирина",
    "Светлана",
    "Юлия",
    "Ксения",
    "Алина",
    "Полина",
    "Софья",
    "Екатерина",
    "Татьяна",
    "Алексей",
    "Дмитрий",
    "Сергей",
    "Андрей",
    "Максим",
    "Иван",
    "Никита",
    "Артём",
    "Михаил",
    "Павел",
    "Егор",
    "Кирилл",
    "Роман",
]
INITIALS = "АБВГДЕЗИКЛМНОПРСТУФХЧШЯ"


@dataclasses.dataclass(frozen=True)
class Visit:
    at: dt.datetime  # UTC
    card: int  # index into GuestPlan.cards
    items: tuple[Item, ...]
    lines: bool  # the POS sent the items
    redeem: bool  # pays with points if the card has some
    refund: str | None = None  # "full" or "line" (a dessert), a couple of minutes later


@dataclasses.dataclass(frozen=True)
class GuestPlan:
    phone: str
    name: str
    birthday: dt.date | None
    cards: tuple[str, ...]  # a channel slug per card (CARD_PROGRAM gives its program)
    joined: dt.datetime
    marketing: bool
    visits: tuple[Visit, ...]


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), list(weights.values()))[0]


def _at(today: dt.date, days_ago: int, now: dt.datetime, rng: random.Random) -> dt.datetime:
    """A moment of café hours `days_ago` local days back, never later than a few minutes
    before `now`."""
    hour = rng.choices(list(HOUR_WEIGHTS), list(HOUR_WEIGHTS.values()))[0]
    local = dt.datetime.combine(
        today - dt.timedelta(days=days_ago), dt.time(hour, rng.randrange(60)), zoneinfo.ZoneInfo(TIMEZONE)
    )
    at = local.astimezone(dt.UTC)
    latest = now - dt.timedelta(minutes=5)
    return at if at <= latest else latest - dt.timedelta(minutes=rng.randrange(90))


def _basket(rng: random.Random, at: dt.datetime) -> tuple[Item, ...]:
    hour = at.astimezone(zoneinfo.ZoneInfo(TIMEZONE)).hour
    drink = rng.choice(MENU["tea"]) if rng.random() < 0.12 else rng.choices(MENU["coffee"], COFFEE_WEIGHTS)[0]
    items = [drink]
    if rng.random() < 0.3:
        items.append(rng.choice(MENU["dessert"]))
    if 12 <= hour <= 15 and rng.random() < 0.35:
        items.append(rng.choice(MENU["food"]))
    return tuple(items)


def _joined_days_ago(rng: random.Random, profile: str, channel: str) -> int:
    if profile == "lapsed":
        return rng.randint(100, HISTORY_DAYS - 2)
    if channel == "instagram" and rng.random() < 0.55:
        return rng.randint(80, 100)  # a giveaway in Instagram three months ago
    # More guests joined lately: the programme grows.
    return int((HISTORY_DAYS - 1) * (1 - rng.random() ** 0.6))


def _visit_days(rng: random.Random, profile: str, joined: int) -> list[int]:
    """Days ago of each visit, the first on the day of joining."""
    if profile == "never":
        return []
    days = [joined]
    if profile == "once":
        return days
    gap, stop, most = (9, 30), 0, 10**6
    if profile == "regular":
        gap = (4, 12)
        if rng.random() < 0.25:
            stop = rng.randint(35, 75)  # a regular who stopped coming
    elif profile == "lapsed":
        gap, stop, most = (4, 20), 91, rng.randint(2, 5)
    day = joined
    while len(days) < most:
        day -= rng.randint(*gap)
        if day < stop:
            break
        days.append(day)
    return days


def _guest(
    rng: random.Random, now: dt.datetime, n: int, phone: str, name: str, profile: str, cards: tuple[str, ...]
) -> GuestPlan:
    today = now.astimezone(zoneinfo.ZoneInfo(TIMEZONE)).date()
    joined_ago = _joined_days_ago(rng, profile, cards[0]) if n >= len(GUESTS) else rng.randint(150, 175)
    visits = []
    for day in _visit_days(rng, profile, joined_ago):
        at = _at(today, day, now, rng)
        visits.append(
            Visit(
                at=at,
                card=rng.randrange(len(cards)),
                items=_basket(rng, at),
                lines=day <= POS_LINES_DAYS,
                redeem=rng.random() < 0.3,
            )
        )
    joined = visits[0].at - dt.timedelta(minutes=3) if visits else _at(today, joined_ago, now, rng)
    birthday = (
        dt.date(rng.randint(1975, 2004), rng.randint(1, 12), rng.randint(1, 28))
        if rng.random() < 0.75
        else None
    )
    marketing = n < len(GUESTS) or rng.random() < 0.45
    return GuestPlan(phone, name, birthday, cards, joined, marketing, tuple(visits))


def plan_history(now: dt.datetime, rng: random.Random, guests: int = GUEST_COUNT) -> list[GuestPlan]:
    """Who joined when, through which channel, and every visit since: regulars about
    weekly (some stopped), occasional guests, lapsed ones, one-timers, cards never used;
    a couple of refunds. Deterministic for a given `rng` seed and `now`."""
    plans = []
    for n in range(guests):
        if n < len(GUESTS):
            phone, name = GUESTS[n]
            plans.append(_guest(rng, now, n, phone, name, "regular", ("counter", "cashier")))
            continue
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(INITIALS)}."
        plans.append(
            _guest(rng, now, n, f"+79161{n:06d}", name, _pick(rng, PROFILES), (_pick(rng, CHANNEL_SHARES),))
        )
    return _with_refunds(plans, now)


def _with_refunds(plans: list[GuestPlan], now: dt.datetime) -> list[GuestPlan]:
    """Mark two recent checks of bonus cards with a dessert: one refunded whole (rung up
    twice), one by its dessert line."""
    recent = now - dt.timedelta(days=25)
    found: list[tuple[int, int]] = []
    for g, plan in enumerate(plans):
        for v, visit in enumerate(plan.visits):
            if (
                visit.at >= recent
                and visit.lines
                and CARD_PROGRAM[plan.cards[visit.card]] == "bonus"
                and any(item.category == "dessert" for item in visit.items)
            ):
                found.append((g, v))
                break
        if len(found) == 2:
            break
    out = list(plans)
    for (g, v), kind in zip(found, ("line", "full"), strict=False):
        visits = list(out[g].visits)
        visits[v] = dataclasses.replace(visits[v], refund=kind)
        out[g] = dataclasses.replace(out[g], visits=tuple(visits))
    return out


# --- playing it through the services ---------------------------------------------------------


def _seed_history(till: Actor, program_ids: dict[str, int], plans: Sequence[GuestPlan]) -> None:
    """Every join (cards, consents) and purchase (points paid and stamp rewards used when
    the card has them; refunds) at its planned time, in time order so ids run with the
    clock as they would have, one transaction per day. The rollups are folded in at once
    (the dashboard is right on the first look); the outbox rows of this past (card
    updates, events) are left to the worker, and the triggers made afterwards do not
    answer them (campaigns.triggers.on_event)."""
    from loyalwallet.analytics import rollup

    events = sorted(
        [(plan.joined, g, -1) for g, plan in enumerate(plans)]
        + [(visit.at, g, v) for g, plan in enumerate(plans) for v, visit in enumerate(plan.visits)]
    )
    codes: dict[int, list[str]] = {}
    points: dict[str, int] = {}
    rewards: dict[str, int] = {}
    for _, day in itertools.groupby(events, key=lambda event: event[0].date()):
        with db.transaction() as session:
            for _, g, v in day:
                if v < 0:
                    codes[g] = _join(session, till, program_ids, plans[g])
                    points.update(dict.fromkeys(codes[g], 0))
                    rewards.update(dict.fromkeys(codes[g], 0))
                else:
                    visit = plans[g].visits[v]
                    _play(session, till, visit, codes[g][visit.card], points, rewards)
    rollup.catch_up(settle=dt.timedelta(0))


def _join(session: Any, till: Actor, program_ids: dict[str, int], plan: GuestPlan) -> list[str]:
    """The guest's cards and consents, as the join page would record them."""
    from loyalwallet.customers.models import Customer
    from loyalwallet.programs.models import Program

    guest = GuestData(phone=plan.phone, name=plan.name, birthday=plan.birthday)
    codes = []
    for slug in plan.cards:
        program = session.get(Program, program_ids[CARD_PROGRAM[slug]])
        assert program is not None
        card, _ = enroll(session, till, program, guest, channel=slug, now=plan.joined)
        codes.append(card.code)
    customer = session.get(Customer, card.customer_id)
    assert customer is not None
    record_consent(session, customer, "personal_data", True, CONSENT_VERSION, "join_page", now=plan.joined)
    if plan.marketing:
        record_consent(session, customer, "marketing", True, CONSENT_VERSION, "join_page", now=plan.joined)
    return codes


def _play(
    session: Any, till: Actor, visit: Visit, code: str, points: dict[str, int], rewards: dict[str, int]
) -> None:
    amount = sum(item.price for item in visit.items)
    use_reward = rewards[code] > 0 and any(item.category == "coffee" for item in visit.items)
    redeem = 0
    if visit.redeem and points[code] >= 100:  # a point pays 1 ₽ (100 kopecks)
        redeem = min(points[code], amount * BONUS_RULES["max_redeem_pct"] // 100 // 100)
    body = PurchaseIn(
        card=code,
        amount=amount,
        items=[item.line() for item in visit.items] if visit.lines or use_reward else None,
        redeem_points=redeem,
        use_reward=use_reward,
        location_id=till.location_id,
    )
    _, out, _ = purchase(session, till, body, now=visit.at)
    if visit.refund is not None:
        later = visit.at + dt.timedelta(minutes=2)
        if visit.refund == "line":
            line = next(i for i, item in enumerate(visit.items) if item.category == "dessert")
            ask = RefundIn.model_validate({"lines": [{"line": line}], "reason": "Гость отказался от десерта"})
        else:
            ask = RefundIn(reason="Пробили дважды")
        _, out, _ = refund(session, till, out["id"], ask, now=later)
    points[code] = out["card"]["points_available"]
    rewards[code] = len(out["card"]["rewards"])


def _seed_campaigns(merchant_id: int, bonus_id: int) -> None:
    """Offers, automatic triggers, printed certificates and a draft campaign (the
    guests' marketing consents come with their history)."""
    from loyalwallet.campaigns import offers, service, triggers

    owner = system(merchant_id)
    with db.transaction() as session:
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
                    "body": "С наступающим днём рождения! {points_text} и десерт в подарок",
                },
            },
            program_id=bonus_id,
        )
        triggers.create(
            session,
            owner,
            "points_expiring",
            "Сгорают баллы",
            {
                "days_before": 14,
                "message": {**message, "body": "Скоро сгорят баллы ({points_text}, {date}) — приходите!"},
            },
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
