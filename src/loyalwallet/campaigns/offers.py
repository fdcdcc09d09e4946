"""Offers (coupon templates) and the coupons issued from them: to a card by a campaign,
a trigger or a manager, or as printable anonymous codes (gift certificates, flyers).

Redemption is the checkout's: the `coupon` code in a purchase body (checkout.service).
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from loyalwallet.campaigns.models import CouponBatch, Offer
from loyalwallet.campaigns.rules import CODE_ALPHABET, OfferSpec, coupon_window, normalise_code, parse
from loyalwallet.cards.models import Card, Coupon
from loyalwallet.db import utcnow
from loyalwallet.errors import DomainError, Explained, not_found
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.service import audit
from loyalwallet.programs.service import get_program

CODE_LENGTH = 10
MAX_BATCH = 10_000


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def _free_codes(session: Session, merchant_id: int, n: int) -> list[str]:
    """n codes not used by any coupon of the merchant (31^10 codes: clashes are rare)."""
    codes: set[str] = set()
    while len(codes) < n:
        fresh = {new_code() for _ in range(n - len(codes))} - codes
        taken = set(
            session.scalars(
                select(Coupon.code).where(Coupon.merchant_id == merchant_id, Coupon.code.in_(fresh))
            ).all()
        )
        codes |= fresh - taken
    return list(codes)


# --- offers ----------------------------------------------------------------------------


def view(offer: Offer, stats: dict[str, int] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": offer.id,
        "name": offer.name,
        "description": offer.description,
        "kind": offer.kind,
        "pct": offer.value / 100 if offer.kind == "percent_off" else None,
        "value": offer.value,
        "sku": offer.sku,
        "category": offer.category,
        "min_amount": offer.min_amount,
        "program_id": offer.program_id,
        "uses_per_coupon": offer.uses_per_coupon,
        "valid_days": offer.valid_days,
        "valid_from": offer.valid_from.isoformat() if offer.valid_from else None,
        "valid_until": offer.valid_until.isoformat() if offer.valid_until else None,
        "max_issued": offer.max_issued,
        "issued": offer.issued,
        "status": offer.status,
        "created_at": offer.created_at.isoformat(),
    }
    if stats is not None:
        out["stats"] = stats
    return out


def stats(session: Session, offer: Offer) -> dict[str, int]:
    """Issued, redeemed (uses), still open, revoked."""
    row = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(offer.uses_per_coupon - Coupon.uses_left), 0),
            func.count().filter(Coupon.status == "available"),
            func.count().filter(Coupon.status == "revoked"),
        ).where(Coupon.offer_id == offer.id)
    ).one()
    return {"issued": int(row[0]), "uses": int(row[1]), "open": int(row[2]), "revoked": int(row[3])}


def get_offer(session: Session, merchant_id: int, offer_id: int) -> Offer:
    offer = session.get(Offer, offer_id)
    if offer is None or offer.merchant_id != merchant_id:
        raise not_found("offer")
    return offer


def _apply(session: Session, actor: Actor, offer: Offer, spec: OfferSpec) -> None:
    if spec.program_id is not None:
        get_program(session, actor.merchant_id, spec.program_id)
    offer.name = spec.name.strip()
    offer.description = spec.description
    offer.kind = spec.kind
    offer.value = spec.coupon_value()
    offer.sku = spec.sku
    offer.category = spec.category
    offer.min_amount = spec.min_amount
    offer.program_id = spec.program_id
    offer.uses_per_coupon = spec.uses_per_coupon
    offer.valid_days = spec.valid_days
    offer.valid_from = spec.valid_from
    offer.valid_until = spec.valid_until
    offer.max_issued = spec.max_issued
    offer.updated_at = utcnow()


def create_offer(session: Session, actor: Actor, raw: dict[str, Any]) -> Offer:
    actor.require("manager")
    spec = parse(OfferSpec, raw, "offer")
    now = utcnow()
    offer = Offer(merchant_id=actor.merchant_id, issued=0, status="active", created_at=now)
    _apply(session, actor, offer, spec)
    session.add(offer)
    session.flush()
    audit(session, actor, "offer.create", "offer", offer.id, {"name": offer.name, "kind": offer.kind})
    return offer


def update_offer(session: Session, actor: Actor, offer_id: int, raw: dict[str, Any]) -> Offer:
    """Change an offer. Coupons already issued keep what they were issued with."""
    actor.require("manager")
    offer = get_offer(session, actor.merchant_id, offer_id)
    current = view(offer)
    merged = {
        k: current[k]
        for k in (
            "name",
            "description",
            "kind",
            "value",
            "sku",
            "category",
            "min_amount",
            "program_id",
            "uses_per_coupon",
            "valid_days",
            "valid_from",
            "valid_until",
            "max_issued",
        )
    }
    if offer.kind == "percent_off":
        merged["pct"] = offer.value / 100
        merged["value"] = 0
    status = raw.pop("status", None)
    merged.update(raw)
    if merged.get("kind") != "percent_off":
        merged.pop("pct", None)
    spec = parse(OfferSpec, merged, "offer")
    _apply(session, actor, offer, spec)
    if status is not None:
        if status not in ("active", "archived"):
            raise DomainError("validation_error", "status must be active or archived", field="status")
        offer.status = status
    audit(
        session, actor, "offer.update", "offer", offer.id, {**raw, **({"status": status} if status else {})}
    )
    return offer


# --- coupons ---------------------------------------------------------------------------


def _take_quota(session: Session, offer: Offer, n: int) -> None:
    """Count n more coupons against max_issued, atomically (no overshoot under races)."""
    stmt = update(Offer).where(Offer.id == offer.id)
    if offer.max_issued is not None:
        stmt = stmt.where(Offer.issued + n <= Offer.max_issued)
    result = session.execute(stmt.values(issued=Offer.issued + n))
    if result.rowcount != 1:  # type: ignore[attr-defined]  # a CursorResult at run time, typed as Result
        raise Explained("offer_exhausted", "the offer {name!r} has no coupons left to issue", name=offer.name)
    session.refresh(offer, ["issued"])


def _usable(offer: Offer, now: dt.datetime) -> None:
    if offer.status != "active":
        raise Explained("conflict", "the offer {name!r} is archived", name=offer.name)
    if offer.valid_until is not None and offer.valid_until <= now:
        raise Explained("conflict", "the offer {name!r} has ended", name=offer.name)


def issue(
    session: Session,
    offer: Offer,
    card: Card | None,
    *,
    source: str,
    source_id: int | None,
    now: dt.datetime | None = None,
    cap: dt.datetime | None = None,
) -> Coupon:
    """One coupon of this offer, for a card (or anonymous when card is None)."""
    now = now or utcnow()
    _usable(offer, now)
    if card is not None and offer.program_id is not None and card.program_id != offer.program_id:
        raise DomainError("validation_error", "this offer is for another program", field="card")
    _take_quota(session, offer, 1)
    valid_from, valid_until = coupon_window(now, offer.valid_days, offer.valid_from, offer.valid_until, cap)
    coupon = Coupon(
        merchant_id=offer.merchant_id,
        card_id=card.id if card is not None else None,
        program_id=offer.program_id,
        code=_free_codes(session, offer.merchant_id, 1)[0],
        kind=offer.kind,
        value=offer.value,
        sku=offer.sku,
        category=offer.category,
        name=offer.name,
        source=source,
        source_id=source_id,
        offer_id=offer.id,
        status="available",
        uses_left=offer.uses_per_coupon,
        min_amount=offer.min_amount,
        valid_from=valid_from,
        valid_until=valid_until,
        created_at=now,
    )
    session.add(coupon)
    session.flush()
    return coupon


def issue_to_card(session: Session, actor: Actor, offer_id: int, code: str) -> tuple[Coupon, Card]:
    """A manager gives a guest a coupon; the card's wallets show it."""
    from loyalwallet.cards.book import CardBook, lock_card

    actor.require("manager")
    offer = get_offer(session, actor.merchant_id, offer_id)
    card, program = lock_card(session, actor.merchant_id, code)
    if card.status != "active":
        raise DomainError("card_blocked", "the card is blocked")
    coupon = issue(session, offer, card, source="manual", source_id=None)
    book = CardBook(session, card, program)
    book.rewards_touched = True
    book.touch("coupon")
    audit(session, actor, "coupon.issue", "coupon", coupon.code, {"offer_id": offer.id, "card": card.code})
    return coupon, card


def create_batch(session: Session, actor: Actor, offer_id: int, count: int, name: str = "") -> CouponBatch:
    """Anonymous codes to print: anyone holding one can use it (once per use left)."""
    actor.require("manager")
    if not 1 <= count <= MAX_BATCH:
        raise Explained(
            "validation_error", "count must be 1..{max_batch}", max_batch=MAX_BATCH, extra={"field": "count"}
        )
    offer = get_offer(session, actor.merchant_id, offer_id)
    now = utcnow()
    _usable(offer, now)
    _take_quota(session, offer, count)
    batch = CouponBatch(
        merchant_id=actor.merchant_id,
        offer_id=offer.id,
        name=name or offer.name,
        count=count,
        actor_type=actor.kind,
        actor_id=actor.id,
        created_at=now,
    )
    session.add(batch)
    session.flush()
    valid_from, valid_until = coupon_window(now, offer.valid_days, offer.valid_from, offer.valid_until)
    rows = [
        {
            "merchant_id": actor.merchant_id,
            "card_id": None,
            "program_id": offer.program_id,
            "code": code,
            "kind": offer.kind,
            "value": offer.value,
            "sku": offer.sku,
            "category": offer.category,
            "name": offer.name,
            "source": "anonymous",
            "source_id": batch.id,
            "offer_id": offer.id,
            "status": "available",
            "uses_left": offer.uses_per_coupon,
            "min_amount": offer.min_amount,
            "valid_from": valid_from,
            "valid_until": valid_until,
            "created_at": now,
        }
        for code in _free_codes(session, actor.merchant_id, count)
    ]
    for i in range(0, len(rows), 1000):
        session.execute(insert(Coupon), rows[i : i + 1000])
    audit(
        session,
        actor,
        "coupon_batch.create",
        "coupon_batch",
        batch.id,
        {"offer_id": offer.id, "count": count},
    )
    return batch


def get_batch(session: Session, merchant_id: int, batch_id: int) -> CouponBatch:
    batch = session.get(CouponBatch, batch_id)
    if batch is None or batch.merchant_id != merchant_id:
        raise not_found("coupon batch")
    return batch


def batch_coupons(session: Session, batch: CouponBatch) -> list[Coupon]:
    return list(
        session.scalars(
            select(Coupon)
            .where(
                Coupon.merchant_id == batch.merchant_id,
                Coupon.source == "anonymous",
                Coupon.source_id == batch.id,
            )
            .order_by(Coupon.id)
        )
    )


def coupon_state(coupon: Coupon, now: dt.datetime) -> str:
    """available | used | revoked | expired | not_yet_valid"""
    if coupon.status != "available" or coupon.uses_left <= 0:
        return "used" if coupon.status in ("available", "used") else coupon.status
    if coupon.valid_until is not None and coupon.valid_until <= now:
        return "expired"
    if coupon.valid_from is not None and coupon.valid_from > now:
        return "not_yet_valid"
    return "available"


def coupon_view(
    coupon: Coupon, card_code: str | None = None, now: dt.datetime | None = None
) -> dict[str, Any]:
    return {
        "code": coupon.code,
        "name": coupon.name,
        "kind": coupon.kind,
        "value": coupon.value,
        "sku": coupon.sku,
        "category": coupon.category,
        "min_amount": coupon.min_amount,
        "offer_id": coupon.offer_id,
        "program_id": coupon.program_id,
        "card": card_code,
        "source": coupon.source,
        "source_id": coupon.source_id,
        "status": coupon.status,
        "state": coupon_state(coupon, now or utcnow()),
        "uses_left": coupon.uses_left,
        "valid_from": coupon.valid_from.isoformat() if coupon.valid_from else None,
        "valid_until": coupon.valid_until.isoformat() if coupon.valid_until else None,
        "used_at": coupon.used_at.isoformat() if coupon.used_at else None,
        "created_at": coupon.created_at.isoformat(),
        # The coupon-style pass for Apple Wallet (safe to print or send: signed link).
        "apple_pass_url": _coupon_pass_url(coupon),
    }


def get_coupon(session: Session, merchant_id: int, code: str) -> Coupon:
    coupon = session.scalar(
        select(Coupon).where(Coupon.merchant_id == merchant_id, Coupon.code == normalise_code(code))
    )
    if coupon is None:
        raise not_found("coupon")
    return coupon


def revoke(session: Session, actor: Actor, code: str, reason: str | None = None) -> Coupon:
    from loyalwallet.cards.book import CardBook, lock_card_by_id

    actor.require("manager")
    coupon = get_coupon(session, actor.merchant_id, code)
    if coupon.status == "available":
        if coupon.card_id is not None:
            card, program = lock_card_by_id(session, coupon.card_id)
            CardBook(session, card, program).touch("coupon")
        coupon.status = "revoked"
        audit(session, actor, "coupon.revoke", "coupon", coupon.code, {"reason": reason})
    return coupon


def _coupon_pass_url(coupon: Coupon) -> str:
    # Imported here: the pass builder (Pillow, the APNs client) is more than a command or
    # the worker's start needs for a coupon's view.
    from loyalwallet.wallet.apple.service import coupon_pass_url

    return coupon_pass_url(coupon)
