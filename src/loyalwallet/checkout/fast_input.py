"""What a fast path reads of the request (checkout/fast.py, fast_quote.py): the API key's
actor from this process's cache, the body, the location, the coupon or reward asked for,
and whether the card and programme are ones it covers. Anything else raises Fallback.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel
from starlette.requests import Request

from loyalwallet.cards.models import Card
from loyalwallet.checkout import fast_sql as q
from loyalwallet.checkout import rules
from loyalwallet.checkout.fast_write import Fallback, Read, loaded
from loyalwallet.checkout.schemas import PurchaseIn
from loyalwallet.customers.models import Customer
from loyalwallet.fraud import rules as fr
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.service import KEY_ACTOR, cached_api_key_actor
from loyalwallet.programs.models import Program
from loyalwallet.programs.rules import BonusRules, DiscountRules, StampRules

_BODY_KEYS = frozenset(
    {"card", "amount", "external_id", "redeem_points", "items", "coupon", "use_reward", "location_id"}
)
_Fallback = Fallback  # the name older callers know


def actor_of(request: Request) -> Actor:
    found = request.scope.get("state", {}).get(KEY_ACTOR)  # the Guard's look-up (api.deps)
    if isinstance(found, Actor):
        return found
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        raise Fallback
    hit, actor = cached_api_key_actor(value.strip())
    if not hit or actor is None:
        raise Fallback
    return actor


M = TypeVar("M", bound=BaseModel)


def parse_body(raw: bytes, model: type[M], keys: frozenset[str]) -> M:
    """A JSON object with only `keys`, valid as `model`; anything else falls back (the
    general path then answers with its problem+json)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Fallback from None
    if not isinstance(data, dict) or not keys.issuperset(data):
        raise Fallback
    try:
        return model.model_validate(data)
    except ValueError:
        raise Fallback from None


def body_of(raw: bytes) -> PurchaseIn:
    return parse_body(raw, PurchaseIn, _BODY_KEYS)


# The merchant's anti-fraud rules, parsed once per distinct stored form (statement 1 of
# either fast path reads them: always the current ones, no cache to warm or to expire).
_FRAUD: dict[bytes, fr.FraudRules] = {}


def fraud_rules_of(raw: Any) -> fr.FraudRules:
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


def location_of(actor: Actor, body: PurchaseIn) -> int | None:
    """checkout.service._location without its look-up: another location than the key's
    (or a location for a key bound to none) goes to the general path."""
    if body.location_id is not None and body.location_id != actor.location_id:
        raise Fallback
    try:
        actor.check_location(actor.location_id)
    except Exception:
        raise Fallback from None
    return actor.location_id


def entities_of(row: Any, merchant_id: int) -> tuple[Card, Customer | None, Program]:
    """The card, its guest and its programme as statement 1 (or the quote's) read them."""
    card = loaded(Card, {c: row[c] for c in q.CARD_COLUMNS})
    guest = None
    if card.customer_id is not None:
        guest = loaded(Customer, {c: row[f"u_{c}"] for c in q.GUEST_COLUMNS})
    program = loaded(
        Program,
        {
            "id": row["program_id"],
            "merchant_id": merchant_id,
            "kind": row["p_kind"],
            "name": row["p_name"],
            "rules": row["p_rules"],
            "version": row["p_version"],
        },
    )
    return card, guest, program


def not_covered(card: Card, program: Program, prules: Any) -> bool:
    """A card or programme this path leaves to the general one (see the docstring)."""
    return bool(
        card.status != "active"
        or program.kind == "iiko"
        or not isinstance(prules, (BonusRules, DiscountRules, StampRules))
        or (isinstance(prules, BonusRules) and prules.pending_hours)
        or (isinstance(prules, (BonusRules, DiscountRules)) and prules.tier_period_days)
        or getattr(prules, "kinds", None)  # several stamp kinds (issue 18): the general path
    )


def lines_of(body: PurchaseIn) -> list[rules.Line]:
    return [
        rules.Line(qty=i.qty, price=i.price, sku=i.sku, name=i.name, category=i.category)
        for i in body.items or []
    ]


def offer_of(r: Read, body: PurchaseIn, facts: dict[str, Any], now: dt.datetime) -> rules.Offer | None:
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
