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

import datetime as dt
import logging
from functools import lru_cache
from typing import Any

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from loyalwallet.cards import lots as lotrules
from loyalwallet.cards.codes import normalise
from loyalwallet.cards.models import Card
from loyalwallet.cards.views import CARD_URL_HOOKS
from loyalwallet.checkout import fast_sql as q
from loyalwallet.checkout import idempotency, rules
from loyalwallet.checkout.fast_write import Fallback, Read, write
from loyalwallet.checkout.schemas import PurchaseIn
from loyalwallet.config import get_settings
from loyalwallet.customers.models import Customer
from loyalwallet.errors import DomainError
from loyalwallet.fraud import rules as fr
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.service import cached_api_key_actor
from loyalwallet.outbox.service import wakeup
from loyalwallet.programs.models import Program
from loyalwallet.programs.rules import BonusRules, DiscountRules, StampRules
from loyalwallet.programs.service import rules_of

log = logging.getLogger("loyalwallet.checkout")
PATH = "/api/v1/purchases"
# Switched off by tests to run the general path on the same server (the hypothesis
# test compares both), or by LOYALWALLET_FAST_CHECKOUT=0.
ENABLED = True
# How many purchases each path answered in this process (tests check the fast one ran).
SERVED = {"fast": 0, "general": 0, "replay": 0}
# Why purchases fell back, by the place that sent them ("fast.py:123"): what to cover next.
FELL_BACK: dict[str, int] = {}
_BODY_KEYS = frozenset(
    {"card", "amount", "external_id", "redeem_points", "items", "coupon", "use_reward", "location_id"}
)
_Fallback = Fallback  # the name older callers know


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
        raise Fallback
    hit, actor = cached_api_key_actor(value.strip())
    if not hit or actor is None:
        raise Fallback
    return actor


def _body(raw: bytes) -> PurchaseIn:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Fallback from None
    if not isinstance(data, dict) or not _BODY_KEYS.issuperset(data):
        raise Fallback
    try:
        return PurchaseIn.model_validate(data)
    except ValueError:
        raise Fallback from None


# The merchant's anti-fraud rules, parsed once per distinct stored form (statement 1
# reads them with the card: always the current ones, no cache to warm or to expire).
_FRAUD: dict[bytes, fr.FraudRules] = {}


def _fraud_rules(raw: Any) -> fr.FraudRules:
    stored = orjson.dumps(raw or {}, option=orjson.OPT_SORT_KEYS)
    found = _FRAUD.get(stored)
    if found is None:
        try:
            found = fr.FraudRules.model_validate(raw or {})
        except ValueError:
            raise Fallback from None  # stored by an older version: the general path warns
        if len(_FRAUD) > 1000:
            _FRAUD.clear()
        _FRAUD[stored] = found
    return found


def _location(actor: Actor, body: PurchaseIn) -> int | None:
    """checkout.service._location without its look-up: another location than the key's
    (or a location for a key bound to none) goes to the general path."""
    if body.location_id is not None and body.location_id != actor.location_id:
        raise Fallback
    try:
        actor.check_location(actor.location_id)
    except Exception:
        raise Fallback from None
    return actor.location_id


async def purchase(request: Request, raw: bytes) -> Response:
    """The fast purchase, or Fallback before anything is committed."""
    actor = _actor(request)
    body = _body(raw)
    key = request.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= idempotency.MAX_KEY_LENGTH:
        raise Fallback
    if len(CARD_URL_HOOKS) > 1:
        raise Fallback
    location_id = _location(actor, body)
    now = dt.datetime.now(dt.UTC)
    pool = await q.pool()
    async with pool.acquire() as conn:
        tr = conn.transaction()
        await tr.start()
        try:
            done = await _run(conn, actor, body, key, now, location_id)
            if isinstance(done, Response):  # a replay: nothing was written
                await tr.rollback()
                return done
            response, w = done
            if await conn.fetchval(w.sql(), *w.args):
                raise Fallback  # a coupon used up by another purchase meanwhile
        except BaseException:
            await tr.rollback()
            raise
        await tr.commit()
    wakeup.set()
    return Response(orjson.dumps(response), status_code=201, media_type="application/json")


async def _read(
    conn: Any, actor: Actor, body: PurchaseIn, key: str | None, now: dt.datetime
) -> tuple[Any, dict[str, Any]]:
    """Statement 1 (and, when a purchase of the card committed while it waited for the
    lock, its look-ups again: the card row is then newer than the statement's snapshot)."""
    hour_ago = now - dt.timedelta(hours=1)
    lots = bool(body.redeem_points)
    code = rules.coupon_code(body.coupon) if body.coupon is not None and not body.use_reward else None
    args: list[Any] = [actor.merchant_id, normalise(body.card), hour_ago]
    if key is not None:
        body_hash = idempotency.request_hash(body.model_dump())
        args += [key, body_hash, now, now + idempotency.ttl()]
    if code is not None:
        args.append(code)
    row = await conn.fetchrow(q.read(key is not None, lots, code is not None), *args)
    if row is None:
        raise Fallback  # an unknown card: the general path says 404
    facts = dict(row)
    if row["snapshot_version"] != row["version"] and (key is None or row["record_id"] is not None):
        again = [row["id"], hour_ago] + ([actor.merchant_id, code] if code is not None else [])
        facts.update(await conn.fetchrow(q.refresh(lots, code is not None), *again))
    return row, facts


def _replay(
    row: Any, facts: dict[str, Any], guest: Customer | None, body: PurchaseIn, now: dt.datetime
) -> Response:
    """The answer stored under the key (idempotency.claim's replay), from statement 1."""
    stored = facts.get("stored")
    if stored is None:
        raise Fallback  # claimed by a purchase that committed after statement 1 began
    body_hash, status, response, expires_at = stored
    expires = q.parse_time(expires_at)
    if (expires is not None and expires <= now) or body_hash != idempotency.request_hash(body.model_dump()):
        raise Fallback  # expired (claimed again) or another body (409): the general path
    if not isinstance(response, dict):
        raise Fallback
    card = response.get("card")
    ref = card.get("customer") if isinstance(card, dict) else None
    if isinstance(card, dict) and isinstance(ref, dict) and ref.get("_ref"):
        from loyalwallet.customers.service import view as customer_view

        if ref.get("id") is None:
            shown = None
        elif guest is not None and guest.id == ref.get("id"):
            shown = customer_view(guest)
        else:
            raise Fallback
        response = {**response, "card": {**card, "customer": shown}}
    SERVED["replay"] += 1
    return Response(
        orjson.dumps(response, option=orjson.OPT_NON_STR_KEYS),
        status_code=int(status or 200),
        media_type="application/json",
        headers={"Idempotent-Replayed": "true"},
    )


async def _run(
    conn: Any,
    actor: Actor,
    body: PurchaseIn,
    key: str | None,
    now: dt.datetime,
    location_id: int | None,
) -> tuple[dict[str, Any], q.Writer] | Response:
    row, facts = await _read(conn, actor, body, key, now)
    if row["google"]:
        raise Fallback  # the card's Google link is signed by the general path (wallet.google)
    fraud_rules = _fraud_rules(row["fraud"])
    card = Card(**{c: row[c] for c in q.CARD_COLUMNS})
    guest = Customer(**{c: row[f"u_{c}"] for c in q.GUEST_COLUMNS}) if card.customer_id is not None else None
    if key is not None and row["record_id"] is None:
        return _replay(row, facts, guest, body, now)
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
        card.status != "active"
        or program.kind == "iiko"
        or not isinstance(prules, (BonusRules, DiscountRules, StampRules))
        or (isinstance(prules, BonusRules) and prules.pending_hours)
        or (isinstance(prules, (BonusRules, DiscountRules)) and prules.tier_period_days)
        or getattr(prules, "kinds", None)  # several stamp kinds (issue 18): the general path
    ):
        raise Fallback
    r = Read(
        row=row,
        card=card,
        guest=guest,
        program=program,
        rules=prules,
        rewards=[q.parse_coupon(c) for c in facts["rewards"] or []],
        lots=q.parse_lots(facts["lots"]) if "lots" in facts else None,
    )
    offer = _offer(r, body, facts, now)
    available = max(card.balance, 0)
    balance = card.balance
    if r.lots is not None:  # a redemption: exact spendable points (CardBook.expire_due)
        r.expired = lotrules.expired(r.lots, now)
        balance -= sum(lot.remaining for lot in r.expired)
        available = lotrules.available(r.lots, now)
    state = rules.CardState(available=available, stamps=card.stamps, tier_spend=card.spend, balance=balance)
    lines = [
        rules.Line(qty=i.qty, price=i.price, sku=i.sku, name=i.name, category=i.category)
        for i in body.items or []
    ]
    try:
        outcome = rules.compute(prules, state, body.amount, lines, body.redeem_points, offer)
    except DomainError:
        raise Fallback from None  # the general path says why
    _check_fraud(fraud_rules, actor, card, guest, facts, outcome, now - dt.timedelta(hours=1))
    first = card.first_purchase_at is None
    referral = rules.referral_due(prules, first, card.referrer_card_id, card.referral_rewarded)
    return write(actor, body, r, outcome, referral, row["record_id"], now, location_id)


def _offer(r: Read, body: PurchaseIn, facts: dict[str, Any], now: dt.datetime) -> rules.Offer | None:
    """checkout.service._find_offer on what statement 1 read; a coupon that cannot be
    used goes to the general path, which says why."""
    if body.coupon is None and not body.use_reward:
        return None
    if body.use_reward:
        usable = [c for c in r.rewards if c["valid_until"] is None or c["valid_until"] > now]
        coupon = usable[0] if usable else None
    else:
        coupon = q.parse_coupon(facts["coupon"]) if facts.get("coupon") is not None else None
    if coupon is None:
        raise Fallback
    error = rules.coupon_error(
        status=coupon["status"],
        uses_left=coupon["uses_left"],
        card_id=coupon["card_id"],
        program_id=coupon["program_id"],
        valid_from=coupon["valid_from"],
        valid_until=coupon["valid_until"],
        for_card=r.card.id,
        for_program=r.card.program_id,
        now=now,
    )
    if error is not None:
        raise Fallback
    r.coupon = coupon
    return rules.Offer(
        kind=coupon["kind"],
        value=coupon["value"],
        sku=coupon["sku"],
        category=coupon["category"],
        min_amount=coupon["min_amount"],
    )


def _check_fraud(
    fraud_rules: fr.FraudRules,
    actor: Actor,
    card: Card,
    guest: Customer | None,
    facts: dict[str, Any],
    outcome: rules.Outcome,
    hour_ago: dt.datetime,
) -> None:
    """The anti-fraud facts this path can know without a look-up; a rule that needs one,
    or any hit (alerts and blocks are written by the general path), falls back."""
    if outcome.points_accrued and fr.needs(fraud_rules, "max_accrual_per_day"):
        raise Fallback
    if outcome.points_redeemed and fr.needs(fraud_rules, "max_redemption_per_day"):
        raise Fallback
    if actor.kind == "staff" and fr.needs(fraud_rules, "cashier_burst"):
        raise Fallback
    hourly = 0
    if (
        card.last_visit_at is not None
        and card.last_visit_at >= hour_ago
        and fr.needs(fraud_rules, "max_purchases_per_hour")
    ):
        last = facts["last_purchase"]
        if last is None or last < card.last_visit_at:
            raise Fallback  # a purchase committed while we waited for the lock
        hourly = int(facts["hourly"])
    own = (
        fr.needs(fraud_rules, "own_card")
        and actor.phone_index is not None
        and guest is not None
        and guest.phone_index == actor.phone_index
    )
    facts_ = fr.PurchaseFacts(
        points_accrued=outcome.points_accrued,
        points_redeemed=outcome.points_redeemed,
        purchases_last_hour=hourly,
        own_card=own,
        staff_ops_recent=None,  # not staff, or the burst rule is off (else fallen back above)
    )
    if fr.check_purchase(fraud_rules, facts_):
        raise Fallback


# --- mounting -----------------------------------------------------------------------------


def _receive_once(body: bytes) -> Receive:
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
            except Fallback as e:
                tb = e.__traceback__
                while tb is not None and tb.tb_next is not None:
                    tb = tb.tb_next
                if tb is not None:
                    place = f"{tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}"
                    FELL_BACK[place] = FELL_BACK.get(place, 0) + 1
            except Exception:  # never worse than the general path: it answers instead
                log.exception("checkout fast path failed; the general path answers")
            else:
                if "idempotent-replayed" not in response.headers:
                    SERVED["fast"] += 1
                await response(scope, receive, send)
                return
        SERVED["general"] += 1
        await _general_route().handle(scope, _receive_once(raw), send)


FAST = _Endpoint()


# Listed in wiring.ROUTERS before the checkout's router, so this route comes first.
router = APIRouter()
router.routes.append(Route(PATH, FAST, methods=["POST"], include_in_schema=False))
