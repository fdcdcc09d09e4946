"""Statement 2 of the fast purchase and its answer (checkout/fast.py).

Given what statement 1 read and the rules' outcome, this writes what the general path
(checkout.service.purchase with checkout.steps and cards.book.CardBook) writes, in the
same order within each table: the purchase and its lines; the ledger entries (expiry,
redemption, accrual, referral); the lots spent; the stamp entries and the rewards they
issue; the coupon used; the card's figures; the outbox rows (referral.reward,
card.changed, purchase.created, card.tier_changed); the answer under the key.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from loyalwallet.cards import lots as lotrules
from loyalwallet.cards.book import CardBook, new_coupon_code
from loyalwallet.cards.models import Card, StampEntry
from loyalwallet.cards.views import card_view
from loyalwallet.checkout import fast_sql as q
from loyalwallet.checkout import idempotency, rules
from loyalwallet.checkout.schemas import PurchaseIn
from loyalwallet.checkout.steps import PURCHASE_EVENT_FIELDS, line_rows
from loyalwallet.customers.models import Customer
from loyalwallet.fraud import rules as fr
from loyalwallet.fraud.models import Alert
from loyalwallet.fraud.service import TELEGRAM_TOPIC, telegram_alert
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.models import Merchant
from loyalwallet.outbox.models import OutboxMessage
from loyalwallet.programs.models import Program
from loyalwallet.programs.rules import BonusRules, DiscountRules, Rules, StampRules, tier_for


class Fallback(Exception):
    """This purchase is not one the fast path covers: run the general path."""


class Stub:
    """What card_view needs of a session when nothing has to be read: its info (no
    rewards: the fast path puts the card's rewards in the view itself) and the guest read
    with the card."""

    def __init__(self, card_id: int, guest: Customer | None) -> None:
        self.info = {"rewards_hint": {card_id: 0}}
        self._guest = guest

    def get(self, model: Any, ident: Any) -> Any:
        if model is Customer and self._guest is not None and self._guest.id == ident:
            return self._guest
        raise Fallback

    def scalars(self, stmt: Any) -> Any:
        """The one look-up a card-view hook makes: the Google issuer's row, which
        statement 1 found absent (else the general path answers)."""
        from loyalwallet.wallet.google.models import GoogleIssuer

        if GoogleIssuer.__table__ in stmt.get_final_froms():
            return _NoRows()
        raise Fallback


class _NoRows:
    def first(self) -> None:
        return None


@dataclass(frozen=True)
class Guard:
    """The optimistic shape's statement 2 (checkout/fast.py): the card's row version read
    by statement 1 (the card is written only if it is still that one), and the key to
    claim with the answer (None: no Idempotency-Key)."""

    version: str
    key: str | None = None
    body_hash: str = ""
    expires_at: dt.datetime | None = None


@dataclass
class Read:
    """What statement 1 read, ready for the rules."""

    row: Any
    card: Card
    guest: Customer | None
    program: Program
    rules: Rules
    rewards: list[dict[str, Any]]
    lots: list[lotrules.Lot] | None
    coupon: dict[str, Any] | None = None
    expired: list[lotrules.Lot] = field(default_factory=list)


def _entry(
    actor: Actor, card: Card, kind: str, points: int, now: dt.datetime, **values: Any
) -> dict[str, Any]:
    row = {
        **q.LEDGER_DEFAULTS,
        "merchant_id": actor.merchant_id,
        "card_id": card.id,
        "kind": kind,
        "points": points,
        "remaining": None,
        "expires_at": None,
        "available_at": None,
        "purchase_id": None,
        "refund_id": None,
        "actor_type": None,
        "actor_id": None,
        "reason": None,
        "created_at": now,
    }
    row.update(values)
    return row


def _outbox(actor: Actor, topic: str, payload: dict[str, Any], at: dt.datetime) -> dict[str, Any]:
    return {
        **q.OUTBOX_DEFAULTS,
        "merchant_id": actor.merchant_id,
        "topic": topic,
        "payload": payload,
        "status": "pending",
        "attempts": 0,
        "max_attempts": 12,
        "next_attempt_at": at,
        "created_at": at,
    }


def write(
    actor: Actor,
    body: PurchaseIn,
    r: Read,
    outcome: rules.Outcome,
    referral_points: int,
    key_record: int | None,
    now: dt.datetime,
    location_id: int | None,
    alerts: Sequence[fr.Hit] = (),
    guard: Guard | None = None,
) -> tuple[dict[str, Any], q.Writer]:
    from loyalwallet.checkout.service import _outcome_view

    card, program, prules, coupon = r.card, r.program, r.rules, r.coupon
    purchase_id = int(r.row["purchase_id"])
    w = q.Writer()
    w.insert(
        "purchases",
        [
            {
                **q.PURCHASE_DEFAULTS,
                "id": purchase_id,
                "merchant_id": actor.merchant_id,
                "card_id": card.id,
                "program_id": program.id,
                "location_id": location_id,
                "actor_type": actor.kind,
                "actor_id": actor.id,
                "external_id": body.external_id,
                **outcome.purchase_figures(),
                "coupon_id": coupon["id"] if coupon else None,
                "status": "completed",
                "created_at": now,
            }
        ],
    )
    if body.items:
        w.insert(
            "purchase_lines",
            [{**q.LINE_DEFAULTS, **row} for row in line_rows(actor.merchant_id, purchase_id, body)],
        )
    rewards = list(r.rewards)
    if coupon is not None:  # steps.use_coupon, as one guarded relative UPDATE
        w.raw_update(
            "UPDATE coupons SET uses_left = uses_left - 1,"
            " status = CASE WHEN uses_left - 1 <= 0 THEN 'used' ELSE status END,"
            f" used_at = {w.p(now)} WHERE id = {w.p(coupon['id'])} AND status = 'available' AND uses_left > 0",
            checked=True,
        )
        if coupon["uses_left"] - 1 <= 0:
            rewards = [c for c in rewards if c["id"] != coupon["id"]]

    # Points: the lots (expired ones written off, the redemption FIFO), then the entries.
    balance = card.balance
    entries: list[dict[str, Any]] = []
    lots = r.lots
    taken: dict[int, int] = {}
    by_actor = {"actor_type": actor.kind, "actor_id": actor.id}
    if r.expired:
        total = sum(lot.remaining for lot in r.expired)
        taken.update((lot.id, lot.remaining) for lot in r.expired)
        entries.append(_entry(actor, card, "expiry", -total, now, reason=f"{len(r.expired)} lot(s) expired"))
        balance -= total
    if outcome.points_redeemed > 0:
        assert lots is not None
        for lot_id, take in lotrules.take_spendable(lots, outcome.points_redeemed, now):
            taken[lot_id] = taken.get(lot_id, 0) + take
        lots = [
            lotrules.Lot(x.id, x.remaining - taken.get(x.id, 0), x.expires_at, x.available_at) for x in lots
        ]
        entries.append(
            _entry(
                actor, card, "redemption", -outcome.points_redeemed, now, purchase_id=purchase_id, **by_actor
            )
        )
        balance -= outcome.points_redeemed
    ttl_days = prules.ttl_days if isinstance(prules, BonusRules) else None
    expires_at = now + dt.timedelta(days=ttl_days) if ttl_days else None
    for kind, points, reason in (
        ("accrual", outcome.points_accrued, None),
        ("referral", referral_points, "referral: your first purchase"),
    ):
        if points > 0:
            remaining = lotrules.new_lot_remaining(points, balance)
            entries.append(
                _entry(
                    actor,
                    card,
                    kind,
                    points,
                    now,
                    remaining=remaining,
                    expires_at=expires_at,
                    purchase_id=purchase_id,
                    reason=reason,
                    **by_actor,
                )
            )
            if lots is not None:
                lots.append(lotrules.Lot(0, remaining, expires_at, None))
            balance += points
    if taken:
        values = ", ".join(f"({w.p(lot_id)}::bigint, {w.p(n)}::bigint)" for lot_id, n in taken.items())
        w.raw_update(
            "UPDATE ledger_entries SET remaining = ledger_entries.remaining - v.take"
            f" FROM (VALUES {values}) AS v(id, take) WHERE ledger_entries.id = v.id"
        )
    if entries:
        w.insert("ledger_entries", entries)

    figures: dict[str, Any] = {}
    if balance != card.balance:
        figures["balance"] = balance
    issued = _stamps(w, actor, card, program, prules, outcome, purchase_id, now, figures, rewards)
    first = card.first_purchase_at is None
    figures.update(spend=card.spend + outcome.spend_added, visits=card.visits + 1, last_visit_at=now)
    if first:
        figures["first_purchase_at"] = now
    if referral_points:
        figures["referral_rewarded"] = True
    tier_before = card.tier
    tier_after = tier_before
    if isinstance(prules, (BonusRules, DiscountRules)):
        tier_after = tier_for(prules.tiers, figures["spend"]).name
        if tier_after != tier_before:
            figures["tier"] = tier_after
    # Not updated_at: a purchase's card UPDATE stays HOT (cards.book.PURCHASE).
    figures.update(version=card.version + 1, pass_updated_at=now)
    card.__dict__.update(figures)  # no session tracks it (loaded, below): no events needed
    w.update("cards", card.id, figures, version=guard.version if guard else None)

    stub = Stub(card.id, r.guest)
    book = CardBook(cast(Any, stub), card, program, now)
    if lots is not None:
        book._lots = lots  # the view's points available and pending, as the general path's
    response: dict[str, Any] = {"id": purchase_id, **_outcome_view(outcome)}
    response["rewards_issued"] = issued
    response["coupon"] = coupon["code"] if coupon else None
    response["external_id"] = body.external_id
    response["location_id"] = location_id
    response["created_at"] = now.isoformat()
    view = card_view(cast(Any, stub), card, program, book=book)
    view["rewards"] = rewards_view(rewards, now)
    # The key order of the general path's view (rewards where card_view puts them).
    response["card"] = view

    event_at = dt.datetime.now(dt.UTC)
    # The alerts' Telegram messages first, as fraud.service queues them before the rest.
    telegram = _alerts(w, actor, card, alerts, outcome.amount, r.row["merchant"], now, event_at)
    outbox: list[dict[str, Any]] = []
    if referral_points:
        payload = {"card_id": card.referrer_card_id, "friend_card_id": card.id, "points": referral_points}
        outbox.append(_outbox(actor, "referral.reward", payload, event_at))
    outbox.append(
        _outbox(
            actor,
            "card.changed",
            {"card_id": card.id, "version": card.version, "reason": "purchase"},
            event_at,
        )
    )
    data = {k: response[k] for k in PURCHASE_EVENT_FIELDS} | {"card": card.code}
    at = event_at.isoformat()
    outbox.append(_outbox(actor, "event", {"name": "purchase.created", "data": data, "at": at}, event_at))
    if tier_after != tier_before:
        data = {"card": card.code, "from": tier_before, "to": tier_after}
        outbox.append(
            _outbox(actor, "event", {"name": "card.tier_changed", "data": data, "at": at}, event_at)
        )
    if telegram:
        w.insert_when(OutboxMessage.__table__, [*telegram, *((row, None) for row in outbox)])
    else:
        w.insert(q.OUTBOX_TABLE, outbox)
    # Stored as the general path stores it: the guest as an id only (no personal data).
    if key_record is not None:
        stored = idempotency.without_guest(response)
        w.update(q.IDEM_TABLE, key_record, {"status_code": 201, "response": stored})
    elif guard is not None and guard.key is not None:  # the key claimed with its answer at once
        record = {
            "merchant_id": actor.merchant_id,
            "scope": "purchase",
            "key": guard.key,
            "request_hash": guard.body_hash,
            "status_code": 201,
            "response": idempotency.without_guest(response),
            "created_at": now,
            "expires_at": guard.expires_at,
        }
        w.claim(record)
    return response, w


# One more count on the alert of the same rule, card and cashier if it fired within
# fraud.rules.DEDUP (fraud.service._COUNT_AGAIN, in this path's SQL); a new alert only if
# none was counted.
_COUNT_AGAIN = (
    "UPDATE fraud_alerts SET count = count + 1, last_seen_at = {now} WHERE id = ("
    "SELECT a.id FROM fraud_alerts a WHERE a.merchant_id = {merchant} AND a.dedup_key = {key}"
    " AND a.last_seen_at >= {since} ORDER BY a.id DESC LIMIT 1) RETURNING id"
)


def _alerts(
    w: q.Writer,
    actor: Actor,
    card: Card,
    hits: Sequence[fr.Hit],
    amount: int,
    merchant_row: list[Any] | None,
    now: dt.datetime,
    event_at: dt.datetime,
) -> list[tuple[dict[str, Any], str | None]]:
    """The alert-only rules that fired (fraud.service._act and record_alert): each one
    more count on its recent alert, or a new alert; returns the new alerts' Telegram
    outbox rows, each with the condition that its alert is new."""
    if not hits:
        return []
    if merchant_row is None:
        raise Fallback
    name, locale, timezone, currency, telegram = merchant_row
    merchant = loaded(
        Merchant,
        {
            "id": actor.merchant_id,
            "name": name,
            "locale": locale,
            "timezone": timezone,
            "currency": currency,
            "settings": {"telegram": telegram} if telegram is not None else {},
        },
    )
    context = fr.alert_context("purchase", card.id, card.code, actor, amount)
    new: list[tuple[dict[str, Any], str | None]] = []
    messages: list[tuple[dict[str, Any], str | None]] = []
    for hit in hits:
        fields = fr.alert_fields(actor.merchant_id, hit, "alerted", context, now)
        counted = w.cte(
            _COUNT_AGAIN.format(
                now=w.p(now),
                merchant=w.p(actor.merchant_id),
                key=w.p(fields["dedup_key"]),
                since=w.p(now - fr.DEDUP),
            )
        )
        when = f"NOT EXISTS (SELECT 1 FROM {counted})"
        new.append(({**q.ALERT_DEFAULTS, **fields}, when))
        text = telegram_alert(merchant, loaded(Alert, fields))
        if text is not None:
            messages.append((_outbox(actor, TELEGRAM_TOPIC, {"text": text}, event_at), when))
    w.insert_when(Alert.__table__, new)
    return messages


E = TypeVar("E")


def loaded(cls: type[E], values: dict[str, Any]) -> E:
    """An instance of mapped class `cls` holding `values`, made as the ORM makes a loaded
    row's (its state without a session, the values in its __dict__): the constructor's
    attribute events, one per column, were most of this path's own CPU."""
    obj = cls.__mapper__.class_manager.new_instance()  # type: ignore[attr-defined]
    obj.__dict__.update(values)
    return cast(E, obj)


def rewards_view(rewards: list[dict[str, Any]], now: dt.datetime) -> list[dict[str, Any]]:
    """cards.views.available_rewards on the coupons statement 1 read (and those issued)."""
    return [
        {
            "code": c["code"],
            "name": c["name"],
            "kind": c["kind"],
            "value": c["value"],
            "source": c["source"],
            "valid_until": c["valid_until"].isoformat() if c["valid_until"] else None,
        }
        for c in rewards
        if (c["valid_until"] is None or c["valid_until"] > now)
        and (c["valid_from"] is None or c["valid_from"] <= now)
    ]


def _stamps(
    w: q.Writer,
    actor: Actor,
    card: Card,
    program: Program,
    prules: Rules,
    outcome: rules.Outcome,
    purchase_id: int,
    now: dt.datetime,
    figures: dict[str, Any],
    rewards: list[dict[str, Any]],
) -> int:
    """The stamps of the purchase and the rewards they fill (CardBook.add_stamps):
    returns how many rewards were issued; adds them to `rewards` (the view's)."""
    if not outcome.stamps_added:
        return 0
    assert isinstance(prules, StampRules)
    base = {
        **q.STAMP_DEFAULTS,
        "merchant_id": actor.merchant_id,
        "card_id": card.id,
        "kind": "purchase",
        "stamps": outcome.stamps_added,
        "purchase_id": purchase_id,
        "refund_id": None,
        "coupon_id": None,
        "reason": None,
        "created_at": now,
    }
    stamps = card.stamps + outcome.stamps_added
    issued = 0
    while stamps >= prules.stamps_to_collect:
        stamps -= prules.stamps_to_collect
        issued += 1
    figures["stamps"] = stamps
    if not issued:
        w.insert("stamp_entries", [base])
        return 0
    reward = prules.reward
    valid_until = now + dt.timedelta(days=reward.valid_days) if reward.valid_days else None
    coupons = [
        {
            **q.COUPON_DEFAULTS,
            "merchant_id": actor.merchant_id,
            "card_id": card.id,
            "program_id": program.id,
            "code": new_coupon_code(),
            "kind": reward.kind,
            "value": reward.coupon_value(),
            "sku": reward.sku,
            "category": reward.category,
            "name": reward.name,
            "source": "stamp_reward",
            "source_id": purchase_id,
            "status": "available",
            "uses_left": 1,
            "valid_from": now,
            "valid_until": valid_until,
            "created_at": now,
        }
        for _ in range(issued)
    ]
    ids = w.insert_returning("coupons", coupons)
    template = {**base, "kind": "reward", "stamps": -prules.stamps_to_collect, "coupon_id": None}
    w.insert_with_ids(StampEntry.__table__, [base, template], ids, "coupon_id")
    rewards.extend(
        {"id": 1 << 62, "valid_from": now, **{k: c[k] for k in ("code", "name", "kind", "value", "source")}}
        | {"valid_until": valid_until}
        for c in coupons
    )
    return issued
