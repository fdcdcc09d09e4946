"""The purchase's fast path on PostgreSQL: two round trips, no ORM session.

POST /api/v1/purchases is answered here when it can be; anything else goes, untouched,
to the general path (checkout.api.purchase -> service.purchase), which stays the
reference for every rule and every error. The fast path is optimistic, as the
certificate spend's (certificates/fast.py):

    1. read, without a lock and outside a transaction, the card and its row version
       (xmin), its programme, its guest, its available coupons, its purchases of the
       last hour and last purchase (anti-fraud), its open lots (when redeeming), the
       coupon typed (when one is), the answer stored under the Idempotency-Key (a replay
       is answered from here), the merchant's fraud rules, whether a Google issuer
       exists, and a purchase id, in one statement (checkout/fast_sql.py: read_unlocked)
    -- the pure rules in Python, the same functions as the general path:
       checkout.rules.compute / coupon_error / referral_due, cards.lots (expired, available,
       take_spendable, new_lot_remaining), fraud.rules.check_purchase, cards.views.card_view --
    2. one atomic data-modifying WITH, its own transaction: claim the key with the
       answer; update the card only if its row is still the version read; insert the
       purchase, its lines, ledger entries (expiry, redemption, accrual, referral), stamp
       entries and the rewards they issue, outbox rows; spend the lots, use the coupon
       (checkout/fast_write.py). If the card changed, the key was claimed or the coupon
       used up meanwhile, the statement fails on purpose (a division by zero) and none
       of it stays written.

Every writer of the card's figures (a purchase, a refund, an adjustment, an expiry)
changes its row, so an unchanged row means what statement 1 read of the card, its lots,
its purchases of the hour and its stamps is still true; a concurrent statement 2 waits
for the other writer's row lock and then sees the new version. A lost race (SERVED
"lost_race") runs the locking shape on the same connection: BEGIN; statement 1 claiming
the key and locking the card FOR UPDATE (fast_sql.read; its look-ups read once more when
a purchase of the card committed while it waited for the lock); the rules; statement 2
(the same writer, the key's record updated with the answer); COMMIT. So a key is claimed
once, a replay is answered from a statement 1, and nothing is written twice; under
contention on one card the purchases queue on its lock, as on the general path.

Covered: bonus, discount and stamp programmes (one stamp kind); accrual, redemption with
lots, items, coupons and rewards (`coupon`, `use_reward`), stamps and the rewards they
fill, tiers (lifetime spend), the friend's referral bonus on a first purchase, replays,
the key's own location; fraud rules that do not fire or only alert.

Falls back to the general path (statement 1 rolled back, if it ran), and why:
- any error (unknown card, blocked card, insufficient points, redeem limit, invalid
  coupon, an idempotency conflict or an expired key, a validation error): the general
  path writes the problem+json, and errors are not the hot path;
- a blocking fraud rule that fires (the general path refuses the purchase and writes
  the alert after its rollback; alert-only rules that fire, e.g. purchases per hour,
  are written here in statement 2, deduplicated as fraud.service.record_alert does,
  Telegram message included), and the rules that need a look-up of their own:
  max_accrual_per_day / max_redemption_per_day (off by default) and cashier_burst for a staff member's own login (API keys are not staff);
- a programme with pending_hours or a rolling tier period (tier_period_days): rare
  settings needing a sum over purchases or pending lots; iiko programmes (a conflict);
  stamp programmes with several stamp kinds (issue 18, branch i18-stamps);
- gift certificates, subscriptions, another location than the key's own: they lock
  other rows (certificates, subscriptions) or need a look-up;
- a merchant with a Google Wallet issuer, or a wallet hook besides the default (the
  card's Google link is signed by the general path);
- in the locking shape: a coupon used up by another purchase between its statements
  (statement 2 reports it, everything is rolled back), a replay whose answer was stored
  after its statement 1 began; in either shape, a stored answer that is expired or for
  another body (the general path claims the key again, or says 409); a bearer token
  not in this process's cache of API keys (its first use);
- SQLite, or LOYALWALLET_FAST_CHECKOUT=0.
`FELL_BACK` counts fallbacks by the place that sent them.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any

import asyncpg
import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from loyalwallet.api.guard import BODY
from loyalwallet.api.hot import read_body, receive_once
from loyalwallet.cards import lots as lotrules
from loyalwallet.cards.codes import normalise
from loyalwallet.cards.models import Card
from loyalwallet.cards.views import CARD_URL_HOOKS
from loyalwallet.checkout import fast_sql as q
from loyalwallet.checkout import idempotency, rules
from loyalwallet.checkout.fast_input import (
    actor_of,
    body_of,
    entities_of,
    fraud_rules_of,
    lines_of,
    location_of,
    not_covered,
    offer_of,
)
from loyalwallet.checkout.fast_quote import QUOTE_PATH, quote
from loyalwallet.checkout.fast_write import Fallback, Guard, Read, write
from loyalwallet.checkout.schemas import PurchaseIn
from loyalwallet.config import get_settings
from loyalwallet.customers.models import Customer
from loyalwallet.errors import DomainError
from loyalwallet.fraud import rules as fr
from loyalwallet.merchants.actors import Actor
from loyalwallet.ops.metrics import FAST_FALLBACKS
from loyalwallet.outbox.service import wakeup
from loyalwallet.programs.service import rules_of

log = logging.getLogger("loyalwallet.checkout")
PATH = "/api/v1/purchases"
# Switched off by tests to run the general path on the same server (the hypothesis
# test compares both), or by LOYALWALLET_FAST_CHECKOUT=0.
ENABLED = True
# How many purchases each path answered in this process (tests check the fast one ran).
SERVED = {"fast": 0, "general": 0, "replay": 0, "quote": 0, "lost_race": 0}
# What statement 2 of the optimistic shape raises when it undid itself (its guard's
# division by zero), or when PostgreSQL broke a lock cycle with a concurrent writer of
# the same rows: nothing of it stayed written.
LOST_RACE = (asyncpg.DivisionByZeroError, asyncpg.DeadlockDetectedError)
# Why purchases fell back, by the place that sent them ("fast.py:123"): what to cover next.
FELL_BACK: dict[str, int] = {}


def enabled() -> bool:
    settings = get_settings()
    return ENABLED and not settings.is_sqlite and _env_on()


@lru_cache(maxsize=1)
def _env_on() -> bool:
    """Read once per process (it was a measurable share of a purchase's CPU)."""
    from loyalwallet.config import env

    return (env("FAST_CHECKOUT", "1") or "1") != "0"


class Created(Response):
    """201 with a JSON body: what Response(body, 201, media_type="application/json") is
    (the same two headers, in that order), without its header-building per answer."""

    media_type = "application/json"

    def __init__(self, content: bytes) -> None:
        self.status_code = 201
        self.background = None
        self.body = content
        self.raw_headers = [(b"content-length", str(len(content)).encode()), _JSON_TYPE]


_JSON_TYPE = (b"content-type", b"application/json")


def _header(request: Request, name: bytes) -> str | None:
    """One request header (`name` lower-case), as request.headers.get gives it, without
    building the Headers object."""
    for key, value in request.scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def purchase(request: Request, raw: bytes) -> Response:
    """The fast purchase, or Fallback before anything is committed."""
    actor = actor_of(request)
    body = body_of(raw)
    key = _header(request, b"idempotency-key")
    if key is not None and not 0 < len(key) <= idempotency.MAX_KEY_LENGTH:
        raise Fallback
    if len(CARD_URL_HOOKS) > 1:
        raise Fallback
    location_id = location_of(actor, body)
    now = dt.datetime.now(dt.UTC)
    pool = await q.pool()
    async with pool.acquire() as conn:
        done = await _run(conn, actor, body, key, now, location_id, locked=False)
        if isinstance(done, Response):  # a replay: nothing was written
            return done
        response, w = done
        try:
            await conn.fetchval(w.sql(atomic=True), *w.args)
        except LOST_RACE:
            # The card changed, or the key (or a coupon) was taken, since statement 1:
            # nothing of statement 2 stayed written. The locking shape answers.
            SERVED["lost_race"] += 1
            again = await _locked(conn, actor, body, key, now, location_id)
            if isinstance(again, Response):
                return again
            response = again
    if not wakeup.is_set():  # set() takes the event's lock even when it is set already
        wakeup.set()
    return Created(orjson.dumps(response))


async def _locked(
    conn: Any, actor: Actor, body: PurchaseIn, key: str | None, now: dt.datetime, location_id: int | None
) -> dict[str, Any] | Response:
    """The locking shape (BEGIN; statement 1 with the key's claim and the card's lock;
    the rules; statement 2; COMMIT), after the optimistic one lost a race."""
    tr = conn.transaction()
    await tr.start()
    try:
        done = await _run(conn, actor, body, key, now, location_id, locked=True)
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
    return response


async def _read(
    conn: Any, actor: Actor, body: PurchaseIn, key: str | None, now: dt.datetime, locked: bool
) -> tuple[Any, dict[str, Any]]:
    """Statement 1: unlocked (the optimistic shape), or locked with the key's claim (and,
    when a purchase of the card committed while it waited for the lock, its look-ups
    again: the card row is then newer than the statement's snapshot)."""
    hour_ago = now - dt.timedelta(hours=1)
    lots = bool(body.redeem_points)
    code = rules.coupon_code(body.coupon) if body.coupon is not None and not body.use_reward else None
    args: list[Any] = [actor.merchant_id, normalise(body.card), hour_ago]
    if key is not None:
        args.append(key)
        if locked:
            args += [_body_hash(body), now, now + idempotency.ttl()]
    if code is not None:
        args.append(code)
    sql = (
        q.read(key is not None, lots, code is not None)
        if locked
        else q.read_unlocked(key is not None, lots, code is not None)
    )
    row = await conn.fetchrow(sql, *args)
    if row is None:
        raise Fallback  # an unknown card: the general path says 404
    facts = dict(row)
    if locked and row["snapshot_version"] != row["version"] and (key is None or row["record_id"] is not None):
        again = [row["id"], hour_ago] + ([actor.merchant_id, code] if code is not None else [])
        facts.update(await conn.fetchrow(q.refresh(lots, code is not None), *again))
    return row, facts


def _body_hash(body: PurchaseIn) -> str:
    return idempotency.request_hash(body.model_dump())


def _replay(
    row: Any, facts: dict[str, Any], guest: Customer | None, body: PurchaseIn, now: dt.datetime
) -> Response:
    """The answer stored under the key (idempotency.claim's replay), from statement 1."""
    stored = facts.get("stored")
    if stored is None:
        raise Fallback  # claimed by a purchase that committed after statement 1 began
    body_hash, status, response, expires_at = stored
    expires = q.parse_time(expires_at)
    if (expires is not None and expires <= now) or body_hash != _body_hash(body):
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
    return Replayed(
        orjson.dumps(response, option=orjson.OPT_NON_STR_KEYS),
        status_code=int(status or 200),
        media_type="application/json",
        headers={"Idempotent-Replayed": "true"},
    )


class Replayed(Response):
    """The answer stored under the key (it carries Idempotent-Replayed: true)."""


async def _run(
    conn: Any,
    actor: Actor,
    body: PurchaseIn,
    key: str | None,
    now: dt.datetime,
    location_id: int | None,
    *,
    locked: bool,
) -> tuple[dict[str, Any], q.Writer] | Response:
    row, facts = await _read(conn, actor, body, key, now, locked)
    if row["google"]:
        raise Fallback  # the card's Google link is signed by the general path (wallet.google)
    fraud_rules = fraud_rules_of(row["fraud"])
    card, guest, program = entities_of(row, actor.merchant_id)
    if key is not None and (row["record_id"] is None if locked else facts["stored"] is not None):
        return _replay(row, facts, guest, body, now)
    prules = rules_of(program)
    if not_covered(card, program, prules):
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
    offer = offer_of(r, body, facts, now)
    available = max(card.balance, 0)
    balance = card.balance
    if r.lots is not None:  # a redemption: exact spendable points (CardBook.expire_due)
        r.expired = lotrules.expired(r.lots, now)
        balance -= sum(lot.remaining for lot in r.expired)
        available = lotrules.available(r.lots, now)
    state = rules.CardState(available=available, stamps=card.stamps, tier_spend=card.spend, balance=balance)
    try:
        outcome = rules.compute(prules, state, body.amount, lines_of(body), body.redeem_points, offer)
    except DomainError:
        raise Fallback from None  # the general path says why
    alerts = _check_fraud(fraud_rules, actor, card, guest, facts, outcome, now - dt.timedelta(hours=1))
    first = card.first_purchase_at is None
    referral = rules.referral_due(prules, first, card.referrer_card_id, card.referral_rewarded)
    guard = None
    if not locked:
        guard = Guard(row["row_version"])
        if key is not None:
            guard = Guard(row["row_version"], key, _body_hash(body), now + idempotency.ttl())
    return write(actor, body, r, outcome, referral, row["record_id"], now, location_id, alerts, guard)


def _check_fraud(
    fraud_rules: fr.FraudRules,
    actor: Actor,
    card: Card,
    guest: Customer | None,
    facts: dict[str, Any],
    outcome: rules.Outcome,
    hour_ago: dt.datetime,
) -> list[fr.Hit]:
    """The anti-fraud facts this path can know without a look-up, and the alert-only
    rules they trip (statement 2 writes their alerts, as fraud.service.record_alert
    does); a rule that needs a look-up, or a blocking hit (the general path refuses the
    purchase and writes the alert after its rollback), falls back."""
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
    hits = fr.check_purchase(fraud_rules, facts_)
    if fr.blocking(hits):
        raise Fallback
    return hits


# --- mounting -----------------------------------------------------------------------------


@lru_cache(maxsize=2)
def _general_route(path: str) -> Any:
    """The general path's route for POST `path` (checkout.api)."""
    from loyalwallet.checkout import api

    for route in api.router.routes:
        if getattr(route, "path", None) == path and "POST" in (getattr(route, "methods", None) or ()):
            return route
    raise LookupError(f"no general route for {path}")


def _note_fallback(e: Fallback) -> None:
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is not None:
        place = f"{tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}"
        FELL_BACK[place] = FELL_BACK.get(place, 0) + 1
        FAST_FALLBACKS.labels(place).inc()


class _Endpoint:
    """The ASGI endpoint in front of the general route for POST `path`."""

    def __init__(self, path: str, handler: Callable[[Request, bytes], Awaitable[Response]], served: str):
        self.path = path
        self.handler = handler
        self.served = served

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Called by the router (the app without api.hot in front, or after `direct`
        fell back: the general route answers)."""
        if scope.get(_FELL_BACK):
            SERVED["general"] += 1
            await _general_route(self.path).handle(scope, receive, send)
            return
        await self.direct(scope, receive, send, None)

    async def direct(self, scope: Scope, receive: Receive, send: Send, inner: Any) -> None:
        """The fast path; what it does not answer goes to the general route: through
        `inner` (the rest of the app, when api.hot called this in front of FastAPI's
        layers: the route's exception handlers and dependencies need them), else here."""
        raw = scope.pop(BODY, None)  # the Guard's read of the whole body
        if raw is None:
            raw = await read_body(receive)
            if raw is None:
                return
        if enabled():
            request = Request(scope)
            try:
                response = await self.handler(request, raw)
            except Fallback as e:
                _note_fallback(e)
            except Exception:  # never worse than the general path: it answers instead
                log.exception("checkout fast path failed; the general path answers")
            else:
                if not isinstance(response, Replayed):
                    SERVED[self.served] += 1
                await response(scope, receive, send)
                return
        if inner is not None:
            scope[_FELL_BACK] = True
            await inner(scope, receive_once(raw), send)
            return
        SERVED["general"] += 1
        await _general_route(self.path).handle(scope, receive_once(raw), send)


# Set in the scope when `direct` hands the request on to the whole app.
_FELL_BACK = "loyalwallet.fast_fell_back"

FAST = _Endpoint(PATH, purchase, "fast")

FAST_QUOTE = _Endpoint(QUOTE_PATH, quote, "quote")

# Listed in wiring.ROUTERS before the checkout's router, so these routes come first.
router = APIRouter()
router.hot = True  # type: ignore[attr-defined]  # matched first (api/app.py), called by api/hot.py
router.routes.append(Route(PATH, FAST, methods=["POST"], include_in_schema=False))
router.routes.append(Route(QUOTE_PATH, FAST_QUOTE, methods=["POST"], include_in_schema=False))
