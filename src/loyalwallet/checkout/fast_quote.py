"""The quote's fast path on PostgreSQL (POST /api/v1/purchases/quote): one statement,
no transaction, no ORM session (checkout.service.quote is the reference and answers
whatever this does not cover: the same fallbacks as the purchase's, see checkout/fast.py).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

import orjson
from starlette.requests import Request
from starlette.responses import Response

from loyalwallet.cards.book import CardBook
from loyalwallet.cards.codes import normalise
from loyalwallet.cards.views import CARD_URL_HOOKS, card_view
from loyalwallet.checkout import fast_sql as q
from loyalwallet.checkout import rules
from loyalwallet.checkout.fast_input import (
    actor_of,
    body_of,
    entities_of,
    lines_of,
    location_of,
    not_covered,
    offer_of,
)
from loyalwallet.checkout.fast_write import Fallback, Read, Stub, rewards_view
from loyalwallet.errors import DomainError
from loyalwallet.programs.service import rules_of

QUOTE_PATH = "/api/v1/purchases/quote"


async def quote(request: Request, raw: bytes) -> Response:
    """What the purchase would do (checkout.service.quote), or Fallback."""
    actor = actor_of(request)
    body = body_of(raw)
    if len(CARD_URL_HOOKS) > 1:
        raise Fallback
    location_of(actor, body)
    now = dt.datetime.now(dt.UTC)
    code = rules.coupon_code(body.coupon) if body.coupon is not None and not body.use_reward else None
    args: list[Any] = [actor.merchant_id, normalise(body.card)]
    if code is not None:
        args.append(code)
    pool = await q.pool()
    async with pool.acquire() as conn:
        row = await conn.fetchrow(q.quote(code is not None), *args)
    if row is None or row["google"]:
        raise Fallback
    card, guest, program = entities_of(row, actor.merchant_id)
    prules = rules_of(program)
    if not_covered(card, program, prules):
        raise Fallback
    facts = dict(row)
    r = Read(
        row=row,
        card=card,
        guest=guest,
        program=program,
        rules=prules,
        rewards=[q.parse_coupon(c) for c in facts["rewards"] or []],
        lots=None,
    )
    offer = offer_of(r, body, facts, now)
    available = max(card.balance, 0)
    state = rules.CardState(
        available=available, stamps=card.stamps, tier_spend=card.spend, balance=card.balance
    )
    try:
        outcome = rules.compute(prules, state, body.amount, lines_of(body), body.redeem_points, offer)
    except DomainError:
        raise Fallback from None
    from loyalwallet.checkout.service import _outcome_view

    result = _outcome_view(outcome)
    result["max_redeem_points"] = outcome.max_redeem_points
    result["points_available"] = available
    result["coupon"] = r.coupon["code"] if r.coupon else None
    stub = Stub(card.id, guest)
    view = card_view(cast(Any, stub), card, program, book=CardBook(cast(Any, stub), card, program, now))
    view["rewards"] = rewards_view(r.rewards, now)
    result["card"] = view
    return Response(orjson.dumps(result), status_code=200, media_type="application/json")
