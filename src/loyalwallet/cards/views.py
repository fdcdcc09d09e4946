"""What a card looks like to the API, the cashier and the guest: its links (and the hooks
that may replace them), its rewards, the card view and its ledger.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalwallet.cards.book import CardBook
from loyalwallet.cards.models import Card, Coupon, LedgerEntry, StampEntry
from loyalwallet.config import get_settings
from loyalwallet.customers.models import Customer
from loyalwallet.customers.service import view as customer_view
from loyalwallet.db import utcnow
from loyalwallet.programs.models import Program
from loyalwallet.programs.rules import (
    BonusRules,
    DiscountRules,
    DiscountTier,
    StampRules,
    next_tier,
)
from loyalwallet.programs.service import rules_of

# Wallet parts may replace a card's links in card_view (the Google save link once it
# has been signed): each hook gets (session, card, program, urls) and edits `urls`.
# Put here by wiring.install() (wiring.CARD_URL_HOOKS).
CARD_URL_HOOKS: list[Callable[[Session, Card, Program, dict[str, str]], None]] = []


@dataclass(frozen=True)
class CardNote:
    """A line another part adds to what the guest sees of a card (a running subscription:
    "20 cups a month — left 12 until 31.12.2026"): the web card, the Apple pass's fields
    and the Google object's text modules show it."""

    key: str  # stable per note: the Apple field key, the Google text module id
    title: str  # as the merchant typed it
    left: int
    until: dt.datetime


# Each gives a card's notes (session, card); put here by wiring.install() (wiring.CARD_NOTES).
# Not part of card_view: the purchase answer does not read them.
CARD_NOTES: list[Callable[[Session, Card], list[CardNote]]] = []


def card_notes(session: Session, card: Card) -> list[CardNote]:
    return [note for source in CARD_NOTES for note in source(session, card)]


def card_urls(card: Card) -> dict[str, str]:
    base = get_settings().base_url
    return {
        "apple_pass_url": f"{base}/c/{card.public_token}/pass.pkpass",
        "google_save_url": f"{base}/c/{card.public_token}/google",
        "web_card_url": f"{base}/c/{card.public_token}",
    }


def available_rewards(
    session: Session, card: Card, now: dt.datetime | None = None, book: CardBook | None = None
) -> list[dict[str, Any]]:
    now = now or utcnow()
    hint = session.info.get("rewards_hint", {}).get(card.id)
    if hint == 0 and not (book is not None and book.rewards_touched):
        return []
    rows = session.scalars(
        select(Coupon).where(Coupon.card_id == card.id, Coupon.status == "available").order_by(Coupon.id)
    ).all()
    return [
        {
            "code": c.code,
            "name": c.name,
            "kind": c.kind,
            "value": c.value,
            "source": c.source,
            "valid_until": c.valid_until.isoformat() if c.valid_until else None,
        }
        for c in rows
        if (c.valid_until is None or c.valid_until > now) and (c.valid_from is None or c.valid_from <= now)
    ]


def _urls(session: Session, card: Card, program: Program) -> dict[str, str]:
    urls = card_urls(card)
    for hook in CARD_URL_HOOKS:
        hook(session, card, program, urls)
    return urls


def card_view(
    session: Session,
    card: Card,
    program: Program,
    *,
    created: bool = False,
    book: CardBook | None = None,
    with_customer: bool = True,
) -> dict[str, Any]:
    """The card as the API shows it (CONTRACT.md), with what a cashier needs besides."""
    rules = rules_of(program)
    now = book.now if book else utcnow()
    if book is None:
        book = CardBook(session, card, program, now)
    out: dict[str, Any] = {
        "code": card.code,
        "program_id": card.program_id,
        "program_kind": program.kind,
        "program_name": program.name,
        "status": card.status,
        "balance": card.balance,
        "points_available": max(0, book.available()) if program.kind == "bonus" else 0,
        "points_pending": book.pending() if program.kind == "bonus" else 0,
        "stamps": card.stamps,
        "stamps_required": rules.stamps_required if isinstance(rules, StampRules) else None,
        # stamps_required = N: N - 1 paid stamps fill the card, the N-th visit is free.
        "stamps_to_collect": rules.stamps_to_collect if isinstance(rules, StampRules) else None,
        "tier": card.tier,
        "discount_pct": None,
        "cashback_pct": None,
        "next_tier": None,
        "spend": card.spend,
        "visits": card.visits,
        "last_visit_at": card.last_visit_at.isoformat() if card.last_visit_at else None,
        "rewards": available_rewards(session, card, now, book),
        **_urls(session, card, program),
        "created": created,
        "created_at": card.created_at.isoformat(),
    }
    if isinstance(rules, StampRules) and rules.multi_kind:
        out["stamp_kinds"] = stamp_kinds_view(rules, book)
    if isinstance(rules, (BonusRules, DiscountRules)):
        tier = next((t for t in rules.tiers if t.name == card.tier), rules.tiers[0])
        if isinstance(tier, DiscountTier):
            out["discount_pct"] = float(tier.discount_pct)  # display only, never used for money
        else:
            out["cashback_pct"] = float(tier.cashback_pct)
        upcoming = next_tier(rules.tiers, card.spend)
        if upcoming is not None and not rules.tier_period_days:
            out["next_tier"] = {"name": upcoming.name, "spend_needed": upcoming.min_spend - card.spend}
    if with_customer and card.customer_id is not None:
        customer = session.get(Customer, card.customer_id)
        out["customer"] = customer_view(customer) if customer else None
    else:
        out["customer"] = None
    return out


def stamp_kinds_view(rules: StampRules, book: CardBook) -> list[dict[str, Any]]:
    """Each stamp kind of a card with several (kind 1 first): what it holds of how many."""
    return [
        {
            "kind": number,
            "name": kind.name,
            "stamps": book.stamps_of(number),
            "stamps_required": kind.stamps_required,
            "stamps_to_collect": kind.stamps_to_collect,
            "reward": kind.reward.name,
        }
        for number, kind in enumerate(rules.stamp_kinds(), start=1)
    ]


def ledger_view(
    session: Session, card: Card, limit: int = 100, before_id: int | None = None
) -> list[dict[str, Any]]:
    """Points and stamps movements of a card, newest first."""
    stmt = select(LedgerEntry).where(LedgerEntry.card_id == card.id)
    if before_id:
        stmt = stmt.where(LedgerEntry.id < before_id)
    entries = session.scalars(stmt.order_by(LedgerEntry.id.desc()).limit(limit)).all()
    stamp_stmt = select(StampEntry).where(StampEntry.card_id == card.id)
    stamps = session.scalars(stamp_stmt.order_by(StampEntry.id.desc()).limit(limit)).all()
    items: list[dict[str, Any]] = [
        {
            "id": f"p{e.id}",
            "type": "points",
            "kind": e.kind,
            "points": e.points,
            "remaining": e.remaining,
            "expires_at": e.expires_at.isoformat() if e.expires_at else None,
            "available_at": e.available_at.isoformat() if e.available_at else None,
            "purchase_id": e.purchase_id,
            "refund_id": e.refund_id,
            "reason": e.reason,
            "created_at": e.created_at.isoformat(),
        }
        for e in entries
    ]
    items += [
        {
            "id": f"s{e.id}",
            "type": "stamps",
            "kind": e.kind,
            "stamps": e.stamps,
            "purchase_id": e.purchase_id,
            "refund_id": e.refund_id,
            "reason": e.reason,
            "created_at": e.created_at.isoformat(),
            # Which stamp kind, only on cards with several (single-kind answers as before).
            **({"stamp_kind": e.stamp_kind} if e.stamp_kind != 1 else {}),
        }
        for e in stamps
    ]
    items.sort(key=lambda item: (item["created_at"], item["id"]), reverse=True)
    return items[:limit]
