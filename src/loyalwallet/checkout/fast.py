"""The purchase's fast path on PostgreSQL: four round trips, no ORM session.

POST /api/v1/purchases is answered here when the purchase is an everyday one; anything
else goes, untouched, to the general path (checkout.api.purchase -> service.purchase),
which stays the reference for every rule and every error. The fast path is

    BEGIN
    1. claim the Idempotency-Key, lock the card, read its program, its reward count, its
       purchases of the last hour (anti-fraud) and a purchase id, in one statement
    -- the pure rules in Python: checkout.rules.compute, fraud.rules.check_purchase,
       cards.lots.new_lot_remaining, the card's view (cards.views.card_view) --
    2. insert the purchase, its ledger entry and outbox rows, update the card and store
       the answer under the key, in one statement
    COMMIT

on asyncpg (measured in bench/checkout.py: the driver's and the ORM's Python cost per
statement is what limits a purchase on this machine, not PostgreSQL).

Covered (the daily case of a bonus programme): a card that is active, has no reward waiting and no referral to pay; a body with only card, amount and
external_id; a programme without pending points or a rolling tier period; fraud rules
that need no extra look-up and do not fire; no Google Wallet issuer for the merchant;
the API key and the merchant's fraud rules already in this process's caches. Everything
else — a replayed or conflicting Idempotency-Key, an unknown card, any error, any field
the general path knows and this one does not — rolls back (if anything was begun) and
runs the general path, which answers exactly as before.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from functools import lru_cache
from typing import Any, cast

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from loyalwallet.cards import lots as lotrules
from loyalwallet.cards.codes import normalise
from loyalwallet.cards.models import Card, LedgerEntry
from loyalwallet.cards.views import CARD_URL_HOOKS, card_view
from loyalwallet.checkout import idempotency, rules
from loyalwallet.checkout.models import IdempotencyRecord, Purchase
from loyalwallet.checkout.schemas import PurchaseIn
from loyalwallet.checkout.steps import PURCHASE_EVENT_FIELDS
from loyalwallet.config import get_settings
from loyalwallet.customers.models import Customer
from loyalwallet.fraud import rules as fr
from loyalwallet.fraud.service import cached_rules
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.service import cached_api_key_actor
from loyalwallet.outbox.models import OutboxMessage
from loyalwallet.outbox.service import wakeup
from loyalwallet.programs.models import Program
from loyalwallet.programs.rules import BonusRules
from loyalwallet.programs.service import rules_of

log = logging.getLogger("loyalwallet.checkout")
PATH = "/api/v1/purchases"
# Switched off by tests to run the general path on the same server (the hypothesis
# test compares both), or by LOYALWALLET_FAST_CHECKOUT=0.
ENABLED = True
# How many purchases each path answered in this process (tests check the fast one ran).
SERVED = {"fast": 0, "general": 0}
_BODY_KEYS = frozenset({"card", "amount", "external_id"})

# --- statements ---------------------------------------------------------------------------

# Every column of the card and of its guest (the view and anti-fraud read them; a column
# added later comes along).
_CARD_COLUMNS = tuple(c.name for c in Card.__table__.columns)
_GUEST_COLUMNS = tuple(c.name for c in Customer.__table__.columns)
_COLS = ", ".join([f"c.{c}" for c in _CARD_COLUMNS] + [f"u.{c} AS u_{c}" for c in _GUEST_COLUMNS])
_READ = """
SELECT {claim} AS record_id, nextval(pg_get_serial_sequence('purchases', 'id')) AS purchase_id,
       {cols},
       p.kind AS p_kind, p.name AS p_name, p.rules AS p_rules, p.version AS p_version, p.status AS p_status,
       (SELECT count(*) FROM coupons WHERE coupons.card_id = c.id AND coupons.status = 'available') AS rewards,
       (SELECT count(*) FROM purchases WHERE purchases.card_id = c.id AND purchases.created_at >= $3) AS hourly,
       (SELECT max(created_at) FROM purchases WHERE purchases.card_id = c.id) AS last_purchase
FROM cards c JOIN programs p ON p.id = c.program_id LEFT JOIN customers u ON u.id = c.customer_id
WHERE c.merchant_id = $1 AND c.code = $2
FOR UPDATE OF c
"""
_CLAIM = """
WITH claim AS (
    INSERT INTO idempotency_records (merchant_id, scope, key, request_hash, created_at, expires_at)
    VALUES ($1, 'purchase', $4, $5, $6, $7)
    ON CONFLICT (merchant_id, scope, key) DO NOTHING RETURNING id
)"""
READ_WITH_KEY = _CLAIM + _READ.format(claim="(SELECT id FROM claim)", cols=_COLS)
READ_WITHOUT_KEY = _READ.format(claim="NULL::bigint", cols=_COLS)


def _defaults(table: Any) -> dict[str, Any]:
    """The Python-side scalar defaults of a table's columns (Core inserts apply them;
    this path writes SQL, so it applies them too: a column added with a default keeps
    working here)."""
    out = {}
    for col in table.columns:
        default = col.default
        if default is not None and getattr(default, "is_scalar", False):
            out[col.name] = default.arg
    return out


_PURCHASE_DEFAULTS = _defaults(Purchase.__table__)
_LEDGER_DEFAULTS = _defaults(LedgerEntry.__table__)
_OUTBOX_DEFAULTS = _defaults(OutboxMessage.__table__)
_IDEM_TABLE = IdempotencyRecord.__table__.name


class _Writer:
    """Builds statement 2 (one data-modifying WITH), numbering the parameters."""

    def __init__(self) -> None:
        self.args: list[Any] = []
        self.parts: list[str] = []

    def p(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def insert(self, table: str, rows: list[dict[str, Any]]) -> None:
        names = list(rows[0])
        values = ", ".join("(" + ", ".join(self.p(row[n]) for n in names) + ")" for row in rows)
        self.parts.append(f"INSERT INTO {table} ({', '.join(names)}) VALUES {values}")

    def update(self, table: str, key: int, values: dict[str, Any]) -> None:
        sets = ", ".join(f"{n} = {self.p(v)}" for n, v in values.items())
        self.parts.append(f"UPDATE {table} SET {sets} WHERE id = {self.p(key)}")

    def sql(self) -> str:
        ctes = ", ".join(f"w{i} AS ({part})" for i, part in enumerate(self.parts))
        return f"WITH {ctes} SELECT 1"


# --- connections --------------------------------------------------------------------------

# One pool per event loop (a server process has one). Held strongly: a pool dropped with
# its loop would have its connections finalised by the garbage collector in whatever
# thread runs it, on a loop that is gone (a segfault under uvloop, seen in the tests'
# several in-process servers).
_pools: dict[asyncio.AbstractEventLoop, Any] = {}


async def _init(conn: Any) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads, schema="pg_catalog"
        )


async def _no_reset(conn: Any) -> None:
    return None


async def _pool() -> Any:
    """One asyncpg pool per event loop (the server has one; tests may make several)."""
    import asyncpg

    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None:
        url = get_settings().database_url.replace("postgresql+psycopg://", "postgresql://", 1)
        # No reset query when a connection goes back to the pool (asyncpg's default is
        # one more round trip per purchase): this path leaves no session state behind,
        # and every transaction is committed or rolled back before the release.
        pool = await asyncpg.create_pool(url, min_size=1, max_size=10, init=_init, reset=_no_reset)
        _pools[loop] = pool
    return pool


# --- the route ----------------------------------------------------------------------------


class _Fallback(Exception):
    """This purchase is not one the fast path covers: run the general path."""


class _Stub:
    """What card_view needs of a session when nothing has to be read: its info (the
    reward count read with the card) and the guest read with the card."""

    def __init__(self, info: dict[str, Any], guest: Customer | None) -> None:
        self.info = info
        self._guest = guest

    def get(self, model: Any, ident: Any) -> Any:
        if model is Customer and self._guest is not None and self._guest.id == ident:
            return self._guest
        raise _Fallback


def enabled() -> bool:
    settings = get_settings()
    return ENABLED and not settings.is_sqlite and _env_on()


def _env_on() -> bool:
    from loyalwallet.config import env

    return (env("FAST_CHECKOUT", "1") or "1") != "0"


def _actor(request: Request) -> Actor:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        raise _Fallback
    hit, actor = cached_api_key_actor(value.strip())
    if not hit or actor is None:
        raise _Fallback
    return actor


def _body(raw: bytes) -> tuple[PurchaseIn, dict[str, Any]]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _Fallback from None
    if isinstance(data, dict) and type(data.get("redeem_points")) is int and data["redeem_points"] == 0:
        data = {k: v for k, v in data.items() if k != "redeem_points"}  # the default: nothing redeemed
    if not isinstance(data, dict) or not _BODY_KEYS.issuperset(data):
        raise _Fallback
    try:
        return PurchaseIn.model_validate(data), data
    except ValueError:
        raise _Fallback from None


def _no_google(merchant_id: int) -> bool:
    """True when this process knows the merchant has no Google issuer (the general path
    fills that cache; a link to sign goes through it)."""
    from loyalwallet.wallet.google import issuer as google

    cached = google._issuers.get(merchant_id)
    return cached is not None and cached[0] > time.monotonic() and cached[1] is None


async def purchase(request: Request, raw: bytes) -> Response:
    """The fast purchase, or _Fallback before anything is committed."""
    actor = _actor(request)
    body, _data = _body(raw)
    key = request.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= idempotency.MAX_KEY_LENGTH:
        raise _Fallback
    fraud_rules = cached_rules(actor.merchant_id)
    if fraud_rules is None or len(CARD_URL_HOOKS) > 1 or not _no_google(actor.merchant_id):
        raise _Fallback
    location_id = actor.location_id
    try:
        actor.check_location(location_id)
    except Exception:
        raise _Fallback from None
    now = dt.datetime.now(dt.UTC)
    code = normalise(body.card)
    pool = await _pool()
    async with pool.acquire() as conn:
        tr = conn.transaction()
        await tr.start()
        try:
            response, write = await _run(conn, actor, body, key, code, now, location_id, fraud_rules)
            await conn.execute(write.sql(), *write.args)
        except BaseException:
            await tr.rollback()
            raise
        await tr.commit()
    wakeup.set()
    return Response(orjson.dumps(response), status_code=201, media_type="application/json")


async def _run(
    conn: Any,
    actor: Actor,
    body: PurchaseIn,
    key: str | None,
    code: str,
    now: dt.datetime,
    location_id: int | None,
    fraud_rules: fr.FraudRules,
) -> tuple[dict[str, Any], _Writer]:
    hour_ago = now - dt.timedelta(hours=1)
    if key is not None:
        body_hash = idempotency.request_hash(body.model_dump())
        row = await conn.fetchrow(
            READ_WITH_KEY, actor.merchant_id, code, hour_ago, key, body_hash, now, now + idempotency.ttl()
        )
    else:
        row = await conn.fetchrow(READ_WITHOUT_KEY, actor.merchant_id, code, hour_ago)
    if row is None or (key is not None and row["record_id"] is None):
        raise _Fallback  # unknown card (404), or a replay / conflict of the key
    program = Program(
        id=row["program_id"],
        merchant_id=actor.merchant_id,
        kind=row["p_kind"],
        name=row["p_name"],
        rules=row["p_rules"],
        version=row["p_version"],
    )
    prules = rules_of(program)
    if (
        row["status"] != "active"
        or row["rewards"]
        or getattr(prules, "multi_kind", False)  # several stamp kinds: the general path
        or not isinstance(prules, BonusRules)
        or prules.pending_hours
        or prules.tier_period_days
        or (
            row["first_purchase_at"] is None
            and row["referrer_card_id"] is not None
            and not row["referral_rewarded"]
        )
    ):
        raise _Fallback
    card = Card(**{c: row[c] for c in _CARD_COLUMNS})
    guest = Customer(**{c: row[f"u_{c}"] for c in _GUEST_COLUMNS}) if card.customer_id is not None else None
    state = rules.CardState(
        available=max(card.balance, 0), stamps=card.stamps, tier_spend=card.spend, balance=card.balance
    )
    outcome = rules.compute(prules, state, body.amount, [], 0, None)
    _check_fraud(fraud_rules, actor, card, guest, row, outcome, hour_ago)
    return _write(actor, body, card, guest, program, prules, outcome, row, key, now, location_id)


def _check_fraud(
    fraud_rules: fr.FraudRules,
    actor: Actor,
    card: Card,
    guest: Customer | None,
    row: Any,
    outcome: rules.Outcome,
    hour_ago: dt.datetime,
) -> None:
    """The anti-fraud facts this path can know without a look-up; a rule that needs one,
    or any hit (alerts and blocks are written by the general path), falls back."""
    if outcome.points_accrued and fr.needs(fraud_rules, "max_accrual_per_day"):
        raise _Fallback
    if actor.kind == "staff" and fr.needs(fraud_rules, "cashier_burst"):
        raise _Fallback
    hourly = 0
    if (
        card.last_visit_at is not None
        and card.last_visit_at >= hour_ago
        and fr.needs(fraud_rules, "max_purchases_per_hour")
    ):
        last = row["last_purchase"]
        if last is None or last < card.last_visit_at:
            raise _Fallback  # a purchase committed while we waited for the lock
        hourly = int(row["hourly"])
    facts = fr.PurchaseFacts(
        points_accrued=outcome.points_accrued,
        points_redeemed=0,
        purchases_last_hour=hourly,
        own_card=(
            fr.needs(fraud_rules, "own_card")
            and actor.phone_index is not None
            and guest is not None
            and guest.phone_index == actor.phone_index
        ),
        staff_ops_recent=None,  # not staff, or the burst rule is off (else fallen back above)
    )
    if fr.check_purchase(fraud_rules, facts):
        raise _Fallback


def _write(
    actor: Actor,
    body: PurchaseIn,
    card: Card,
    guest: Customer | None,
    program: Program,
    prules: BonusRules,
    outcome: rules.Outcome,
    row: Any,
    key: str | None,
    now: dt.datetime,
    location_id: int | None,
) -> tuple[dict[str, Any], _Writer]:
    from loyalwallet.cards.book import CardBook
    from loyalwallet.checkout.service import _outcome_view
    from loyalwallet.programs.rules import tier_for

    purchase_id = int(row["purchase_id"])
    w = _Writer()
    w.insert(
        "purchases",
        [
            {
                **_PURCHASE_DEFAULTS,
                "id": purchase_id,
                "merchant_id": actor.merchant_id,
                "card_id": card.id,
                "program_id": program.id,
                "location_id": location_id,
                "actor_type": actor.kind,
                "actor_id": actor.id,
                "external_id": body.external_id,
                "amount": outcome.amount,
                "tier_discount": outcome.tier_discount,
                "coupon_discount": outcome.coupon_discount,
                "discount": outcome.discount,
                "points_redeemed": outcome.points_redeemed,
                "redeem_value": outcome.redeem_value,
                "to_pay": outcome.to_pay,
                "accrual_base": outcome.accrual_base,
                "points_accrued": outcome.points_accrued,
                "stamps_added": outcome.stamps_added,
                "spend_added": outcome.spend_added,
                "coupon_id": None,
                "tier_before": outcome.tier_before,
                "tier_after": outcome.tier_after,
                "status": "completed",
                "created_at": now,
            }
        ],
    )
    figures: dict[str, Any] = {}
    if outcome.points_accrued > 0:
        points = outcome.points_accrued
        w.insert(
            "ledger_entries",
            [
                {
                    **_LEDGER_DEFAULTS,
                    "merchant_id": actor.merchant_id,
                    "card_id": card.id,
                    "kind": "accrual",
                    "points": points,
                    "remaining": lotrules.new_lot_remaining(points, card.balance),
                    "expires_at": now + dt.timedelta(days=prules.ttl_days) if prules.ttl_days else None,
                    "available_at": None,
                    "purchase_id": purchase_id,
                    "refund_id": None,
                    "actor_type": actor.kind,
                    "actor_id": actor.id,
                    "reason": None,
                    "created_at": now,
                }
            ],
        )
        figures["balance"] = card.balance + points
    first = card.first_purchase_at is None
    figures.update(spend=card.spend + outcome.spend_added, visits=card.visits + 1, last_visit_at=now)
    if first:
        figures["first_purchase_at"] = now
    tier_before = card.tier
    tier_after = tier_for(prules.tiers, figures["spend"]).name
    if tier_after != tier_before:
        figures["tier"] = tier_after
    figures.update(version=card.version + 1, updated_at=now, pass_updated_at=now)
    for name, value in figures.items():
        setattr(card, name, value)
    w.update("cards", card.id, figures)

    stub = _Stub({"rewards_hint": {card.id: 0}}, guest)
    book = CardBook(cast(Any, stub), card, program, now)
    response: dict[str, Any] = {"id": purchase_id, **_outcome_view(outcome)}
    response["rewards_issued"] = 0
    response["coupon"] = None
    response["external_id"] = body.external_id
    response["location_id"] = location_id
    response["created_at"] = now.isoformat()
    response["card"] = card_view(cast(Any, stub), card, program, book=book)

    event_at = dt.datetime.now(dt.UTC)
    payloads: list[tuple[str, dict[str, Any]]] = [
        ("card.changed", {"card_id": card.id, "version": card.version, "reason": "purchase"}),
        (
            "event",
            {
                "name": "purchase.created",
                "data": {k: response[k] for k in PURCHASE_EVENT_FIELDS} | {"card": card.code},
                "at": event_at.isoformat(),
            },
        ),
    ]
    if tier_after != tier_before:
        payloads.append(
            (
                "event",
                {
                    "name": "card.tier_changed",
                    "data": {"card": card.code, "from": tier_before, "to": tier_after},
                    "at": event_at.isoformat(),
                },
            )
        )
    w.insert(
        OutboxMessage.__table__.name,
        [
            {
                **_OUTBOX_DEFAULTS,
                "merchant_id": actor.merchant_id,
                "topic": topic,
                "payload": payload,
                "status": "pending",
                "attempts": 0,
                "max_attempts": 12,
                "next_attempt_at": event_at,
                "created_at": event_at,
            }
            for topic, payload in payloads
        ],
    )
    if row["record_id"] is not None:
        # Stored as the general path stores it: the guest as an id only (no personal data).
        stored = idempotency.without_guest(response)
        w.update(_IDEM_TABLE, int(row["record_id"]), {"status_code": 201, "response": stored})
    return response, w


# --- mounting -----------------------------------------------------------------------------


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


@lru_cache(maxsize=1)
def _general_route() -> Any:
    """The general path's route (checkout.api.purchase)."""
    from loyalwallet.checkout import api

    for route in api.router.routes:
        if getattr(route, "path", None) == PATH and "POST" in (getattr(route, "methods", None) or ()):
            return route
    raise LookupError("no general purchase route")


class _Endpoint:
    """The ASGI endpoint in front of the general route for POST /api/v1/purchases."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        if enabled():
            request = Request(scope)
            try:
                response = await purchase(request, raw)
            except _Fallback:
                pass
            except Exception:  # never worse than the general path: it answers instead
                log.exception("checkout fast path failed; the general path answers")
            else:
                SERVED["fast"] += 1
                await response(scope, receive, send)
                return
        SERVED["general"] += 1
        await _general_route().handle(scope, _replay(raw), send)


FAST = _Endpoint()


# Listed in wiring.ROUTERS before the checkout's router, so this route comes first.
router = APIRouter()
router.routes.append(Route(PATH, FAST, methods=["POST"], include_in_schema=False))
