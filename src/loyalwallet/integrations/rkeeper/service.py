"""loyalwallet as r_keeper's card server: the merchant's connection, card info for a
scanned card or a typed phone, and closed checks booked into our ledger.

Every answer FarCards gets is computed inside one transaction: an error anywhere rolls
the whole check back (nothing half-booked) and becomes a Result 1 answer (api.py).
"""

from __future__ import annotations

import datetime as dt
import hmac
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalwallet import crypto, text
from loyalwallet.cards import book as card_book
from loyalwallet.cards.models import Card
from loyalwallet.cards.views import card_view
from loyalwallet.checkout import service as checkout
from loyalwallet.checkout.models import Purchase
from loyalwallet.checkout.schemas import PurchaseIn, RefundIn
from loyalwallet.config import get_settings
from loyalwallet.customers.service import find_by_phone
from loyalwallet.db import utcnow
from loyalwallet.errors import DomainError, Explained, not_found
from loyalwallet.integrations.rkeeper import rules
from loyalwallet.integrations.rkeeper.models import RkeeperCheck, RkeeperConnection
from loyalwallet.merchants.actors import system
from loyalwallet.merchants.models import Merchant
from loyalwallet.programs.models import Program
from loyalwallet.programs.rules import BonusRules, DiscountRules, StampRules
from loyalwallet.programs.service import rules_of

COLUMN = "rkeeper.secret"
KINDS = {"bonus", "discount", "stamp"}
FUNCTIONS = {"getcardinfoex": "GetCardInfoEx", "transactionsex": "TransactionsEx"}


def connection(session: Session, merchant_id: int) -> RkeeperConnection | None:
    return session.scalar(select(RkeeperConnection).where(RkeeperConnection.merchant_id == merchant_id))


def base_path(merchant_id: int, secret: str) -> str:
    """What the dealer writes as Address in ExtDllHttp.ini (after our host)."""
    return f"/integrations/rkeeper/{merchant_id}/{secret}"


def secret_of(row: RkeeperConnection) -> str:
    secret = crypto.open_(row.secret_sealed, merchant_id=row.merchant_id, column=COLUMN)
    assert secret is not None
    return secret


def _tier_numbers(program: Program, numbers: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    parsed = rules_of(program)
    names = {t.name for t in parsed.tiers} if isinstance(parsed, (BonusRules, DiscountRules)) else set()
    out: dict[str, dict[str, int]] = {}
    for tier, pair in numbers.items():
        if tier not in names:
            known = ", ".join(sorted(names)) or "none"
            raise Explained(
                "validation_error",
                "the programme has no tier {tier!r} (it has: {known})",
                tier=tier,
                known=known,
            )
        for key, value in pair.items():
            if key not in {"discount", "bonus"} or not 0 <= int(value) <= 65535:
                raise Explained(
                    "validation_error",
                    "{key}={value} is not an r_keeper number (0-65535)",
                    key=key,
                    value=value,
                )
        out[tier] = {k: int(v) for k, v in pair.items()}
    return out


def connect(
    session: Session,
    merchant_id: int,
    program_id: int,
    *,
    tiers: dict[str, dict[str, int]] | None = None,
    rotate: bool = False,
    now: dt.datetime | None = None,
) -> tuple[RkeeperConnection, str | None]:
    """Store (or change) the connection. Returns it and the secret when one was made
    (first connect or rotate): the caller shows it once, as part of the address."""
    now = now or utcnow()
    program = session.get(Program, program_id)
    if program is None or program.merchant_id != merchant_id:
        raise not_found("program")
    if program.kind not in KINDS:
        raise Explained(
            "validation_error",
            "r_keeper can serve a bonus, discount or stamp programme, not {kind}",
            kind=program.kind,
        )
    mapped = _tier_numbers(program, tiers or {})
    row = connection(session, merchant_id)
    secret = None
    if row is None or rotate:
        secret = crypto.token(24)
    if row is None:
        row = RkeeperConnection(merchant_id=merchant_id, created_at=now)
        session.add(row)
    if secret is not None:
        row.secret_sealed = crypto.seal(secret, merchant_id=merchant_id, column=COLUMN) or b""
        row.secret_hint = "…" + secret[-4:]
    row.program_id = program_id
    if tiers is not None or row.tiers is None:
        row.tiers = mapped
    row.updated_at = now
    session.flush()
    return row, secret


def status(session: Session, merchant_id: int) -> dict[str, Any]:
    row = connection(session, merchant_id)
    if row is None:
        return {"connected": False}
    program = session.get(Program, row.program_id)
    booked = session.scalars(select(RkeeperCheck.state).where(RkeeperCheck.merchant_id == merchant_id)).all()
    return {
        "connected": True,
        "program": {"id": row.program_id, "name": program.name if program else None},
        "secret": row.secret_hint,
        "address_path": base_path(merchant_id, secret_of(row)),
        "functions": {"GetCardInfoEx": "getcardinfoex", "TransactionsEx": "transactionsex"},
        "tiers": row.tiers or {},
        "checks": {s: booked.count(s) for s in ("booked", "reversed", "skipped")},
        "last_call_at": row.last_call_at.isoformat() if row.last_call_at else None,
        "last_error": row.last_error,
    }


def disconnect(session: Session, merchant_id: int) -> bool:
    row = connection(session, merchant_id)
    if row is None:
        return False
    session.delete(row)
    return True


def authenticate(session: Session, merchant_ref: str, secret: str) -> RkeeperConnection:
    """The connection the path names, or ProtocolError("unauthorized") for any mismatch
    (an unknown merchant and a wrong secret look the same)."""
    refused = rules.ProtocolError(
        "unauthorized", "wrong r_keeper address: check the secret in ExtDllHttp.ini"
    )
    if not merchant_ref.isdigit() or len(merchant_ref) > 18 or not secret:
        raise refused
    row = connection(session, int(merchant_ref))
    if row is None or not hmac.compare_digest(secret.encode(), secret_of(row).encode()):
        raise refused
    return row


def _card(session: Session, conn: RkeeperConnection, number: str) -> Card:
    """The card r_keeper means: our card code (what the Wallet pass shows), else a phone
    typed as the card number; only cards of the connected programme."""
    card: Card | None = None
    try:
        found, _ = card_book.get_card(session, conn.merchant_id, number)
        card = found
    except DomainError:
        card = None
    if card is None and 10 <= len(number) <= 15:
        try:
            customer = find_by_phone(session, conn.merchant_id, number, get_settings().default_region)
        except DomainError:
            customer = None
        if customer is not None:
            card = session.scalar(
                select(Card).where(Card.program_id == conn.program_id, Card.customer_id == customer.id)
            )
    if card is None or card.program_id != conn.program_id:
        raise rules.ProtocolError("card_not_found", f"no card {number} in the connected programme")
    return card


def card_info(session: Session, conn: RkeeperConnection, query: rules.CardQuery) -> rules.CardAnswer:
    card = _card(session, conn, query.card)
    program = session.get(Program, card.program_id)
    merchant = session.get(Merchant, conn.merchant_id)
    assert program is not None and merchant is not None
    lang = merchant.locale or "ru"
    _ = text.gettext_for(lang)
    view = card_view(session, card, program)
    parsed = rules_of(program)
    numbers = (conn.tiers or {}).get(card.tier or "", {})
    summa, screen = 0, card.tier or ""
    if isinstance(parsed, BonusRules):
        points = int(view["points_available"])
        summa = points * parsed.point_value
        shown = text.plural(lang, "%(num)s point", "%(num)s points", points)
        screen = " · ".join(p for p in (shown, card.tier) if p)
    elif isinstance(parsed, StampRules):
        shown = text.plural(lang, "%(num)s stamp", "%(num)s stamps", card.stamps)
        screen = f"{shown} / {parsed.stamps_required}"
    elif isinstance(parsed, DiscountRules) and view.get("discount_pct") is not None:
        screen = " · ".join(p for p in (card.tier, f"{view['discount_pct']:g}%") if p)
    customer = view.get("customer") or {}
    blocked = card.status != "active"
    return rules.CardAnswer(
        holder=rules.mask_holder(customer.get("name"), _("Guest")),
        person_id=int(card.customer_id or 0),
        account=int(card.id),
        blocked=blocked,
        why_blocked=_("The card is blocked; ask a manager.") if blocked else "",
        bonus=int(numbers.get("bonus", 0)),
        discount=int(numbers.get("discount", 0)),
        summa=0 if blocked else summa,
        info=card.tier or "",
        screen=screen,
        slip=screen,
    )


def _point_value(program: Program) -> int | None:
    parsed = rules_of(program)
    return parsed.point_value if isinstance(parsed, BonusRules) else None


def book(session: Session, conn: RkeeperConnection, batch: rules.Batch) -> dict[str, int]:
    """A closed (or cancelled) check: a purchase per card moved, or its reversal. A check
    booked before is not booked again (r_keeper repeats what it did not hear answered)."""
    actor = system(conn.merchant_id)
    now = utcnow()
    counts = {"booked": 0, "reversed": 0, "repeated": 0, "skipped": 0}
    for move in rules.movements(batch):
        card = _card(session, conn, move.card)
        row = session.scalar(
            select(RkeeperCheck).where(
                RkeeperCheck.merchant_id == conn.merchant_id,
                RkeeperCheck.check_key == move.check_key,
                RkeeperCheck.card_id == card.id,
            )
        )
        if move.is_sale:
            if row is not None:
                counts["repeated"] += 1
                continue
            counts["booked"] += 1
            session.add(_sale(session, conn, card, move, batch.check_guid, actor, now))
        elif move.is_storno:
            target = (
                row if row is not None and row.state != "skipped" else _by_guid(session, conn, card, batch)
            )
            if target is None:
                counts["skipped"] += 1
                if row is None:
                    session.add(_row(conn, card, move.check_key, batch.check_guid, "skipped", None, now))
                continue
            if target.state != "booked":
                counts["repeated"] += 1
                continue
            _storno(session, target, move, actor)
            target.state, target.updated_at = "reversed", now
            counts["reversed"] += 1
        elif move.spent or move.paid_from_card:
            raise rules.ProtocolError(
                "validation_error",
                f"check {move.check_key} both pays and cancels for card {move.card}",
            )
    return counts


def _row(
    conn: RkeeperConnection,
    card: Card,
    key: str,
    guid: str | None,
    state: str,
    purchase_id: int | None,
    now: dt.datetime,
) -> RkeeperCheck:
    return RkeeperCheck(
        merchant_id=conn.merchant_id,
        check_key=key,
        check_guid=guid,
        card_id=card.id,
        purchase_id=purchase_id,
        state=state,
        created_at=now,
        updated_at=now,
    )


def _sale(
    session: Session,
    conn: RkeeperConnection,
    card: Card,
    move: rules.Movement,
    guid: str | None,
    actor: Any,
    now: dt.datetime,
) -> RkeeperCheck:
    program = session.get(Program, card.program_id)
    assert program is not None
    redeem = 0
    if move.paid_from_card:
        value = _point_value(program)
        if value is None:
            raise rules.ProtocolError(
                "validation_error",
                "the card's account paid part of the check, but the programme has no points",
            )
        if move.paid_from_card % value:
            raise rules.ProtocolError(
                "validation_error",
                f"{move.paid_from_card} kopecks paid from the card is not a whole number of points",
            )
        redeem = move.paid_from_card // value
    # A discount programme's discount was given by r_keeper (its number, our percentage):
    # the check before it is what our rules price, so the ledger sees the same discount.
    before = move.discount if program.kind == "discount" else 0
    body = PurchaseIn(
        card=card.code,
        amount=move.spent + move.paid_from_card + before,
        redeem_points=redeem,
        external_id=f"rkeeper:{move.check_key}"[:128],
    )
    _status, response, _replayed = checkout.purchase(
        session, actor, body, f"rkeeper:{move.check_key}:{card.id}"
    )
    return _row(conn, card, move.check_key, guid, "booked", int(response["id"]), now)


def _by_guid(
    session: Session, conn: RkeeperConnection, card: Card, batch: rules.Batch
) -> RkeeperCheck | None:
    """A cancelling check that names the cancelled one by its GUID (CHECKDATA checkguid)."""
    if not batch.check_guid:
        return None
    return session.scalar(
        select(RkeeperCheck).where(
            RkeeperCheck.merchant_id == conn.merchant_id,
            RkeeperCheck.check_guid == batch.check_guid,
            RkeeperCheck.card_id == card.id,
            RkeeperCheck.state != "skipped",
        )
    )


def _storno(session: Session, target: RkeeperCheck, move: rules.Movement, actor: Any) -> None:
    assert target.purchase_id is not None
    purchase = session.get(Purchase, target.purchase_id)
    assert purchase is not None
    program = session.get(Program, purchase.program_id)
    before = move.discount if program is not None and program.kind == "discount" else 0
    cancelled = -(move.spent + move.paid_from_card + before)
    left = purchase.amount - purchase.refunded_amount
    amount = None if cancelled >= left else cancelled  # a whole cancellation reverses in full
    checkout.refund(
        session,
        actor,
        target.purchase_id,
        RefundIn(amount=amount, reason=f"r_keeper check {move.check_key} cancelled"),
        f"rkeeper-storno:{target.id}:{move.check_key}",
    )


def touch(session: Session, conn: RkeeperConnection, error: str | None) -> None:
    conn.last_call_at = utcnow()
    conn.last_error = error[:500] if error else None
