"""The ledger of one card: look a card up, lock it for the transaction, and every movement
of points and stamps.

Every balance change goes through `CardBook`, which works on a card row locked for the
transaction and writes the entries and the cached figures together.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import bindparam, event, func, insert, inspect, select, update
from sqlalchemy.orm import Session, defer
from sqlalchemy.orm.attributes import flag_modified, set_committed_value

from loyalwallet import crypto
from loyalwallet.cards import lots as lotrules
from loyalwallet.cards.codes import normalise
from loyalwallet.cards.models import Card, Coupon, LedgerEntry, StampEntry
from loyalwallet.checkout.models import Purchase
from loyalwallet.customers.models import Customer
from loyalwallet.db import is_sqlite, utcnow
from loyalwallet.errors import Explained, not_found
from loyalwallet.merchants.actors import Actor
from loyalwallet.outbox.service import enqueue
from loyalwallet.programs.models import Program
from loyalwallet.programs.rules import (
    BonusRules,
    DiscountRules,
    Rules,
    StampRules,
    tier_for,
)
from loyalwallet.programs.service import rules_of

# --- lookup and locking ------------------------------------------------------------------


# How many rewards the card holds, read with the card itself: most cards hold none, and
# then the view does not query coupons at all.
_REWARDS_COUNT = (
    select(func.count())
    .where(Coupon.card_id == Card.id, Coupon.status == "available")
    .correlate(Card)
    .scalar_subquery()
    .label("rewards")
)


# Built once (with bind parameters): this is the first statement of every purchase.
# The program's design is deferred: the checkout never needs it.
_CARD_QUERY = (
    select(Card, Program, _REWARDS_COUNT, Customer)
    .join(Program, Program.id == Card.program_id)
    .outerjoin(Customer, Customer.id == Card.customer_id)
    .options(defer(Program.design))
)
_BY_CODE = _CARD_QUERY.where(Card.merchant_id == bindparam("merchant_id"), Card.code == bindparam("code"))
_BY_CODE_LOCKED = _BY_CODE.with_for_update(of=Card)
_BY_ID = _CARD_QUERY.where(Card.id == bindparam("card_id"))
_BY_ID_LOCKED = _BY_ID.with_for_update(of=Card)


def _card_row(session: Session, stmt: Any, params: dict[str, Any]) -> tuple[Card, Program]:
    # The guest (if any) is loaded by the same query into the session's identity map,
    # so the view's session.get(Customer, ...) costs no round trip.
    row = session.execute(stmt, params).first()
    if row is None:
        raise not_found("card")
    session.info.setdefault("rewards_hint", {})[row[0].id] = row[2]
    return row[0], row[1]


def lock_card(session: Session, merchant_id: int, code: str) -> tuple[Card, Program]:
    """The card with this code, row-locked for the transaction, and its program.
    (SQLite has no row locks: the write transaction is BEGIN IMMEDIATE instead.)"""
    stmt = _BY_CODE if is_sqlite() else _BY_CODE_LOCKED
    return _card_row(session, stmt, {"merchant_id": merchant_id, "code": normalise(code)})


# The card's purchases since `hour_ago`, read with the locked card: the anti-fraud
# "purchases per hour" rule then needs no statement of its own (fraud.check_purchase).
_PURCHASES_SINCE = (
    select(func.count())
    .where(Purchase.card_id == Card.id, Purchase.created_at >= bindparam("hour_ago"))
    .correlate(Card)
    .scalar_subquery()
    .label("purchases_since")
)
# The newest purchase the statement's snapshot saw: when a concurrent purchase of this
# card committed while we waited for the lock, the locked row's last_visit_at is newer
# and the count above is stale (fraud then counts again with a fresh statement).
_LAST_PURCHASE = (
    select(func.max(Purchase.created_at))
    .where(Purchase.card_id == Card.id)
    .correlate(Card)
    .scalar_subquery()
    .label("last_purchase")
)
_BY_CODE_FOR_PURCHASE = (
    select(Card, Program, _REWARDS_COUNT, Customer, _PURCHASES_SINCE, _LAST_PURCHASE)
    .join(Program, Program.id == Card.program_id)
    .outerjoin(Customer, Customer.id == Card.customer_id)
    .options(defer(Program.design))
    .where(Card.merchant_id == bindparam("merchant_id"), Card.code == bindparam("code"))
)
_BY_CODE_FOR_PURCHASE_LOCKED = _BY_CODE_FOR_PURCHASE.with_for_update(of=Card)
HOURLY_HINT = "purchases_last_hour"


def lock_card_for_purchase(
    session: Session, merchant_id: int, code: str, now: dt.datetime
) -> tuple[Card, Program]:
    """lock_card, also counting the card's purchases in the hour before `now` (kept in
    session.info[HOURLY_HINT] for the anti-fraud check): one round trip for both."""
    stmt = _BY_CODE_FOR_PURCHASE if is_sqlite() else _BY_CODE_FOR_PURCHASE_LOCKED
    params = {"merchant_id": merchant_id, "code": normalise(code), "hour_ago": now - dt.timedelta(hours=1)}
    row = session.execute(stmt, params).first()
    if row is None:
        raise not_found("card")
    session.info.setdefault("rewards_hint", {})[row[0].id] = row[2]
    card, last = row[0], row[5]
    if card.last_visit_at is None or (last is not None and last >= card.last_visit_at):
        session.info.setdefault(HOURLY_HINT, {})[card.id] = (now, int(row[4] or 0))
    return row[0], row[1]


def lock_card_by_id(session: Session, card_id: int) -> tuple[Card, Program]:
    return _card_row(session, _BY_ID if is_sqlite() else _BY_ID_LOCKED, {"card_id": card_id})


def get_card(session: Session, merchant_id: int, code: str) -> tuple[Card, Program]:
    return _card_row(session, _BY_CODE, {"merchant_id": merchant_id, "code": normalise(code)})


def cards_of_customer(session: Session, customer: Customer) -> list[tuple[Card, Program]]:
    rows = session.execute(
        select(Card, Program)
        .join(Program, Program.id == Card.program_id)
        .where(Card.customer_id == customer.id)
        .order_by(Card.id)
    ).all()
    return [(r[0], r[1]) for r in rows]


# --- the ledger of one locked card -------------------------------------------------------

# Statements of the hot path, built once: building them per call (and computing their
# cache keys) costs more than running them.
_LEDGER = LedgerEntry.__table__
_ENTRY_OPTIONAL = (
    "remaining",
    "expires_at",
    "available_at",
    "purchase_id",
    "refund_id",
    "actor_type",
    "actor_id",
    "reason",
)
_INSERT_ENTRY = insert(_LEDGER).returning(_LEDGER.c.id)
_TAKE_FROM_LOT = (
    update(_LEDGER)
    .where(_LEDGER.c.id == bindparam("lot_id"))
    .values(remaining=_LEDGER.c.remaining - bindparam("take"))
)
_OPEN_LOTS = select(_LEDGER.c.id, _LEDGER.c.remaining, _LEDGER.c.expires_at, _LEDGER.c.available_at).where(
    _LEDGER.c.card_id == bindparam("card_id"), _LEDGER.c.remaining > 0
)
_STAMP_OPTIONAL = ("purchase_id", "refund_id", "coupon_id", "reason")
_INSERT_STAMP_ENTRY = insert(StampEntry.__table__)
_AVAILABLE_COUPONS = Coupon.__table__
_CARDS = Card.__table__
# SET takes the columns named in the parameters (the figures that changed).
_SAVE_FIGURES = update(_CARDS).where(_CARDS.c.id == bindparam("card_id"))
_UNSAVED_BOOKS = "unsaved_card_books"


class CardBook:
    """Points and stamps of one card, within the transaction that locked it."""

    def __init__(self, session: Session, card: Card, program: Program, now: dt.datetime | None = None):
        self.session = session
        self.card = card
        self.program = program
        self.rules: Rules = rules_of(program)
        self.now = now or utcnow()
        self._lots: list[lotrules.Lot] | None = None
        self.changed = False
        # Set when this transaction issued, used or revoked a reward (the view re-reads).
        self.rewards_touched = False
        self._unsaved: set[str] = set()

    # The card's cached figures ----------------------------------------------------------

    def set(self, **figures: Any) -> None:
        """Change the card's cached figures. They are written in one Core UPDATE
        (at the latest just before the commit), not by the ORM's unit of work, whose
        flush costs more than the statement itself on the checkout's hot path. When the
        card has other changes for the unit of work (a campaign's message), the figures
        go with them: one UPDATE either way."""
        if self._orm_writes():
            for name, value in figures.items():
                setattr(self.card, name, value)
            return
        for name, value in figures.items():
            set_committed_value(self.card, name, value)  # no ORM history: no second write
        if not self._unsaved:
            self.session.info.setdefault(_UNSAVED_BOOKS, []).append(self)
        self._unsaved.update(figures)

    def _orm_writes(self) -> bool:
        """Whether the unit of work will update the card anyway; if so it takes over the
        figures not saved yet."""
        if not inspect(self.card).modified:
            return False
        for name in self._unsaved:
            flag_modified(self.card, name)
        self._unsaved.clear()
        return True

    def _take_unsaved(self) -> dict[str, Any] | None:
        """The changed figures to write (with the card's id), or None."""
        if not self._unsaved or self._orm_writes():
            return None
        params = {name: getattr(self.card, name) for name in sorted(self._unsaved)}
        self._unsaved.clear()
        return {"card_id": self.card.id, **params}

    # Lots -------------------------------------------------------------------------------

    @property
    def lots(self) -> list[lotrules.Lot]:
        if self._lots is None:
            rows = self.session.execute(_OPEN_LOTS, {"card_id": self.card.id}).all()
            self._lots = [lotrules.Lot(r.id, r.remaining, r.expires_at, r.available_at) for r in rows]
        return self._lots

    def _lots_matter(self) -> bool:
        """Whether spendable points can differ from the balance: only when the program
        holds new points back (pending_hours). Expired lots are written off by the
        periodic sweep, and exactly (expire_due) before any redemption."""
        return self._lots is not None or (isinstance(self.rules, BonusRules) and self.rules.pending_hours > 0)

    def available(self) -> int:
        if not self._lots_matter():
            return max(self.card.balance, 0)
        return lotrules.available(self.lots, self.now)

    def pending(self) -> int:
        if not self._lots_matter():
            return 0
        return lotrules.pending(self.lots, self.now)

    def _set_remaining(self, allocations: list[tuple[int, int]]) -> None:
        taken = dict(allocations)
        if allocations:
            self.session.execute(
                _TAKE_FROM_LOT, [{"lot_id": lot_id, "take": take} for lot_id, take in allocations]
            )
        self._lots = [
            lotrules.Lot(lot.id, lot.remaining - taken.get(lot.id, 0), lot.expires_at, lot.available_at)
            for lot in self.lots
        ]

    def _entry(self, kind: str, points: int, **values: Any) -> int:
        params = dict.fromkeys(_ENTRY_OPTIONAL)
        params.update(values)
        params.update(
            merchant_id=self.card.merchant_id,
            card_id=self.card.id,
            kind=kind,
            points=points,
            created_at=self.now,
        )
        result = self.session.execute(_INSERT_ENTRY, params)
        self.set(balance=self.card.balance + points)
        self.changed = True
        return int(result.scalar_one())

    def expire_due(self) -> int:
        """Write off lots whose time has passed. Returns the points expired."""
        gone = lotrules.expired(self.lots, self.now)
        total = sum(lot.remaining for lot in gone)
        if total:
            self._set_remaining([(lot.id, lot.remaining) for lot in gone])
            self._entry("expiry", -total, reason=f"{len(gone)} lot(s) expired")
        return total

    # Credits and debits -----------------------------------------------------------------

    def credit(
        self,
        kind: str,
        points: int,
        *,
        actor: Actor | None = None,
        purchase_id: int | None = None,
        refund_id: int | None = None,
        reason: str | None = None,
        ttl_days: int | bool | None = True,
        pending_hours: int = 0,
    ) -> int | None:
        """Add a lot. ttl_days=True takes the program's ttl_days; it first repays debt."""
        if points <= 0:
            return None
        if ttl_days is True:
            ttl_days = self.rules.ttl_days if isinstance(self.rules, BonusRules) else None
        expires_at = self.now + dt.timedelta(days=ttl_days) if ttl_days else None
        available_at = self.now + dt.timedelta(hours=pending_hours) if pending_hours else None
        remaining = lotrules.new_lot_remaining(points, self.card.balance)
        entry_id = self._entry(
            kind,
            points,
            remaining=remaining,
            expires_at=expires_at,
            available_at=available_at,
            purchase_id=purchase_id,
            refund_id=refund_id,
            actor_type=actor.kind if actor else None,
            actor_id=actor.id if actor else None,
            reason=reason,
        )
        if self._lots is not None:
            self._lots.append(lotrules.Lot(entry_id, remaining, expires_at, available_at))
        return entry_id

    def redeem(self, points: int, *, actor: Actor | None, purchase_id: int | None) -> None:
        if points <= 0:
            return
        self.expire_due()
        if points > self.available():
            raise Explained(
                "insufficient_points", "the card has {available} points available", available=self.available()
            )
        self._set_remaining(lotrules.take_spendable(self.lots, points, self.now))
        self._entry(
            "redemption",
            -points,
            purchase_id=purchase_id,
            actor_type=actor.kind if actor else None,
            actor_id=actor.id if actor else None,
        )

    def take_back(
        self,
        kind: str,
        points: int,
        *,
        allow_debt: bool,
        actor: Actor | None = None,
        prefer_lot: int | None = None,
        purchase_id: int | None = None,
        refund_id: int | None = None,
        reason: str | None = None,
    ) -> int:
        """Take back points (a refund of an accrual, a negative adjustment). With debt
        allowed the balance may go negative; otherwise it stops at zero. Returns the
        points actually taken."""
        if points <= 0:
            return 0
        allocations, uncovered = lotrules.take_for_reversal(self.lots, points, self.now, prefer=prefer_lot)
        taken = points if allow_debt else points - uncovered
        if taken <= 0:
            return 0
        self._set_remaining(allocations)
        self._entry(
            kind,
            -taken,
            purchase_id=purchase_id,
            refund_id=refund_id,
            actor_type=actor.kind if actor else None,
            actor_id=actor.id if actor else None,
            reason=reason,
        )
        return taken

    # Stamps -----------------------------------------------------------------------------

    def add_stamps(
        self,
        kind: str,
        stamps: int,
        *,
        purchase_id: int | None = None,
        refund_id: int | None = None,
        reason: str | None = None,
        stamp_kind: int = 1,
    ) -> list[int]:
        """Add (or with a negative number remove) stamps of one stamp kind; a full card
        becomes rewards. Returns the ids of rewards issued."""
        if stamps == 0:
            return []
        self._stamp_entry(
            kind, stamps, stamp_kind, purchase_id=purchase_id, refund_id=refund_id, reason=reason
        )
        issued: list[int] = []
        if isinstance(self.rules, StampRules):
            to_collect = self.rules.kind(stamp_kind).stamps_to_collect
            while self.stamps_of(stamp_kind) >= to_collect:
                issued.append(self._issue_reward(purchase_id, stamp_kind))
        return issued

    def stamps_of(self, stamp_kind: int) -> int:
        """The stamps the card holds of one kind (kind 1 is `card.stamps`)."""
        if stamp_kind == 1:
            return self.card.stamps
        return int((self.card.kind_stamps or {}).get(str(stamp_kind), 0))

    def _stamp_entry(self, kind: str, stamps: int, stamp_kind: int = 1, **values: Any) -> None:
        params = dict.fromkeys(_STAMP_OPTIONAL)
        params.update(values)
        params.update(
            merchant_id=self.card.merchant_id,
            card_id=self.card.id,
            kind=kind,
            stamps=stamps,
            stamp_kind=stamp_kind,
            created_at=self.now,
        )
        self.session.execute(_INSERT_STAMP_ENTRY, params)
        if stamp_kind == 1:
            self.set(stamps=self.card.stamps + stamps)
        else:
            held = dict(self.card.kind_stamps or {})
            held[str(stamp_kind)] = int(held.get(str(stamp_kind), 0)) + stamps
            self.set(kind_stamps=held)
        self.changed = True

    def _issue_reward(self, purchase_id: int | None, stamp_kind: int = 1) -> int:
        self.rewards_touched = True
        rules = self.rules
        assert isinstance(rules, StampRules)
        stamp = rules.kind(stamp_kind)
        reward = stamp.reward
        coupon_id = self.session.execute(
            insert(Coupon.__table__)
            .values(
                merchant_id=self.card.merchant_id,
                card_id=self.card.id,
                program_id=self.program.id,
                code=new_coupon_code(),
                kind=reward.kind,
                value=reward.coupon_value(),
                sku=reward.sku,
                category=reward.category,
                name=reward.name,
                source="stamp_reward",
                source_id=purchase_id,
                status="available",
                uses_left=1,
                valid_from=self.now,
                valid_until=self.now + dt.timedelta(days=reward.valid_days) if reward.valid_days else None,
                created_at=self.now,
            )
            .returning(Coupon.__table__.c.id)
        ).scalar_one()
        self._stamp_entry(
            "reward", -stamp.stamps_to_collect, stamp_kind, coupon_id=coupon_id, purchase_id=purchase_id
        )
        return int(coupon_id)

    def remove_stamps(
        self,
        stamps: int,
        *,
        refund_id: int | None = None,
        reason: str | None = None,
        stamp_kind: int = 1,
    ) -> int:
        """Take stamps of one kind off (a refund). When the stamps already turned into a
        reward of that kind that is still unused, the reward is revoked and the card gets
        its stamps back first. Stamps never go below zero. Returns the stamps removed."""
        if stamps <= 0:
            return 0
        while self.stamps_of(stamp_kind) < stamps and isinstance(self.rules, StampRules):
            stmt = (
                select(Coupon.id)
                .where(
                    Coupon.card_id == self.card.id,
                    Coupon.source == "stamp_reward",
                    Coupon.status == "available",
                )
                .order_by(Coupon.id.desc())
                .limit(1)
            )
            if self.rules.multi_kind:
                # The reward of this kind: the one whose "reward" entry is of this kind.
                stmt = stmt.where(
                    select(StampEntry.id)
                    .where(
                        StampEntry.coupon_id == Coupon.id,
                        StampEntry.kind == "reward",
                        StampEntry.stamp_kind == stamp_kind,
                    )
                    .exists()
                )
            reward = self.session.execute(stmt).scalar()
            if reward is None:
                break
            self.session.execute(update(Coupon).where(Coupon.id == reward).values(status="revoked"))
            self.rewards_touched = True
            # The stamps the reward took back (a reward issued before the meaning of
            # stamps_required was fixed took one more than one issued now).
            took = self.session.execute(
                select(func.sum(StampEntry.stamps)).where(
                    StampEntry.card_id == self.card.id,
                    StampEntry.coupon_id == reward,
                    StampEntry.kind == "reward",
                )
            ).scalar()
            self._stamp_entry(
                "reward_revoked",
                -int(took) if took else self.rules.kind(stamp_kind).stamps_to_collect,
                stamp_kind,
                coupon_id=reward,
                refund_id=refund_id,
            )
        removed = min(stamps, self.stamps_of(stamp_kind))
        if removed:
            self._stamp_entry("refund", -removed, stamp_kind, refund_id=refund_id, reason=reason)
        return removed

    # Tier -------------------------------------------------------------------------------

    def tier_spend(self) -> int:
        """The spend that decides the tier: lifetime, or the program's rolling window."""
        rules = self.rules
        if isinstance(rules, (BonusRules, DiscountRules)) and rules.tier_period_days:
            since = self.now - dt.timedelta(days=rules.tier_period_days)
            value = self.session.execute(
                select(func.coalesce(func.sum(Purchase.spend_added - Purchase.spend_reversed), 0)).where(
                    Purchase.card_id == self.card.id, Purchase.created_at >= since
                )
            ).scalar_one()
            return int(value)
        return self.card.spend

    def retier(self, spend: int | None = None) -> tuple[str | None, str | None]:
        """Recompute the tier; returns (before, after)."""
        before = self.card.tier
        rules = self.rules
        if self.program.kind == "iiko":
            return before, before  # iiko decides the tier (integrations/iiko)
        if isinstance(rules, (BonusRules, DiscountRules)):
            after = tier_for(rules.tiers, self.tier_spend() if spend is None else spend).name
            if after != before:
                self.set(tier=after)
                self.changed = True
            return before, after
        return before, before

    # Commit the cached figures ----------------------------------------------------------

    def touch(self, reason: str, *, queue: bool = True) -> None:
        """Tell wallets the card changed: bump its version and queue the fan-out.
        `queue=False`: the caller queues it for many cards at once (cards_changed)."""
        card = self.card
        if reason == PURCHASE:
            # A purchase leaves updated_at (indexed) alone, so its card UPDATE can be HOT:
            # the purchase row it inserts tells analytics the merchant changed (snapshot.py).
            self.set(version=card.version + 1, pass_updated_at=self.now)
        else:
            self.set(version=card.version + 1, updated_at=self.now, pass_updated_at=self.now)
        if queue:
            enqueue(
                self.session,
                card.merchant_id,
                "card.changed",
                {"card_id": card.id, "version": card.version, "reason": reason},
            )


# The reason of a purchase's touch: the one card write that does not set updated_at (the
# write in the same transaction of a purchases row, whose created_at stands for it).
PURCHASE = "purchase"

# The reason of a touch that changed only Card.message (a campaign or trigger message
# without points or a coupon): only wallets that show the message need to hear of it.
MESSAGE_ONLY = "message"


def cards_changed(session: Session, merchant_id: int, card_ids: list[int], reason: str) -> None:
    """One `card.changed` row for many cards touched with queue=False (a campaign
    chunk): its listeners handle them together (one multiplexed APNs row, ...)."""
    if card_ids:
        enqueue(session, merchant_id, "card.changed", {"card_ids": sorted(set(card_ids)), "reason": reason})


@event.listens_for(Session, "before_commit")
def _save_books(session: Session) -> None:
    # Every book's figures reach the database in the transaction that changed them:
    # one statement per set of changed columns (a campaign chunk touches many cards).
    batches: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for book in session.info.pop(_UNSAVED_BOOKS, ()):
        params = book._take_unsaved()
        if params is not None:
            batches.setdefault(tuple(params), []).append(params)
    for rows in batches.values():
        session.execute(_SAVE_FIGURES, rows[0] if len(rows) == 1 else rows)


@event.listens_for(Session, "after_transaction_end")
def _forget_books(session: Session, transaction: Any) -> None:
    # A rolled-back transaction's figures are never written; a savepoint's end keeps them.
    if transaction.parent is None:
        session.info.pop(_UNSAVED_BOOKS, None)


def new_coupon_code() -> str:
    return crypto.token(6).replace("-", "X").replace("_", "Y").upper()[:8]
