"""Cards: issue them (enrolment) and the staff's manual actions on them (adjust, block).

Every balance change goes through `cards.book.CardBook`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalwallet import crypto
from loyalwallet.cards.book import CardBook, lock_card
from loyalwallet.cards.codes import new_code
from loyalwallet.cards.models import Card
from loyalwallet.customers.service import GuestData, get_or_create
from loyalwallet.db import utcnow
from loyalwallet.errors import DomainError, Explained
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.service import audit
from loyalwallet.outbox.service import emit_event
from loyalwallet.programs.models import Program
from loyalwallet.programs.rules import (
    BonusRules,
    StampRules,
    initial_tier,
)
from loyalwallet.programs.service import rules_of

# --- enrolment ---------------------------------------------------------------------------


def new_card(
    session: Session,
    program: Program,
    customer_id: int | None,
    channel: str | None = None,
    code: str | None = None,
    now: dt.datetime | None = None,
) -> Card:
    """A new card row with fresh unguessable tokens and a unique code (or `code`: the
    number of a plastic card; the caller has checked it is free)."""
    now = now or utcnow()
    rules = rules_of(program)
    if code is None:
        for _ in range(10):
            candidate = new_code()
            taken = session.scalar(
                select(Card.id).where(Card.merchant_id == program.merchant_id, Card.code == candidate)
            )
            if taken is None:
                code = candidate
                break
        else:  # pragma: no cover - 10 collisions in 10^12 codes
            raise RuntimeError("could not find a free card code")
    card = Card(
        merchant_id=program.merchant_id,
        program_id=program.id,
        customer_id=customer_id,
        code=code,
        serial=crypto.token(16),
        auth_token=crypto.token(24),
        public_token=crypto.token(24),
        status="active",
        balance=0,
        stamps=0,
        tier=initial_tier(rules),
        spend=0,
        visits=0,
        channel=channel,
        version=1,
        pass_updated_at=now,
        created_at=now,
        updated_at=now,
    )
    session.add(card)
    session.flush()
    return card


# Program kind -> what opens a card in the outside engine that runs it (wiring.py:
# integrations/iiko). Returns the card's code and what to record once the card exists;
# raises DomainError (nothing written) when the engine refuses.
CARD_OPENERS: dict[str, Callable[[Session, Program, GuestData], tuple[str, Callable[[Card], None]]]] = {}


def enroll(
    session: Session,
    actor: Actor,
    program: Program,
    guest: GuestData,
    *,
    channel: str | None = None,
    referrer: Card | None = None,
    code: str | None = None,
    now: dt.datetime | None = None,
    location_id: int | None = None,
) -> tuple[Card, bool]:
    """The guest's card in this program: the existing one, or a new one with the
    welcome gift. Returns (card, created). `now` is the clock (the demo backdates)."""
    if program.status != "active":
        raise DomainError("program_archived", "this program no longer takes new guests")
    customer, _ = get_or_create(session, actor.merchant_id, guest, now=now)
    existing = session.scalar(
        select(Card).where(Card.program_id == program.id, Card.customer_id == customer.id)
    )
    if existing is not None:
        return existing, False
    opened = None
    opener = CARD_OPENERS.get(program.kind)
    if opener is not None:  # another engine holds the card (iiko): its number, made there first
        code, opened = opener(session, program, guest)
    card = new_card(session, program, customer.id, channel, code, now=now)
    # Where it was issued (staff reports): the join channel's location, else the till's.
    card.issued_location_id = location_id if location_id is not None else actor.location_id
    if opened is not None:
        opened(card)
    if referrer is not None and referrer.program_id == program.id and referrer.customer_id != customer.id:
        card.referrer_card_id = referrer.id
    book = CardBook(session, card, program, now)
    rules = book.rules
    if isinstance(rules, BonusRules) and rules.welcome_points:
        book.credit("welcome", rules.welcome_points, actor=actor, reason="welcome gift")
    if isinstance(rules, StampRules) and rules.welcome_stamps:
        book.add_stamps("welcome", rules.welcome_stamps, reason="welcome gift")
    audit(session, actor, "card.create", "card", card.code, {"program_id": program.id})
    emit_event(session, actor.merchant_id, "card.created", {"code": card.code, "program_id": program.id})
    return card, True


# --- staff actions -----------------------------------------------------------------------


def adjust(
    session: Session,
    actor: Actor,
    code: str,
    *,
    points: int = 0,
    stamps: int = 0,
    reason: str,
    stamp_kind: int = 1,
) -> tuple[Card, Program, CardBook]:
    """A manual correction by a manager or owner, with a reason, audit-logged."""
    actor.require("manager")
    if not points and not stamps:
        raise DomainError("validation_error", "give points or stamps to adjust by")
    card, program = lock_card(session, actor.merchant_id, code)
    book = CardBook(session, card, program)
    book.expire_due()
    if points and program.kind != "bonus":
        raise DomainError("validation_error", "this program has no points", field="points")
    if stamps and program.kind != "stamp":
        raise DomainError("validation_error", "this program has no stamps", field="stamps")
    if stamps and isinstance(book.rules, StampRules):
        book.rules.kind(stamp_kind)  # validation_error for a kind the programme lacks
    if points > 0:
        book.credit("adjustment", points, actor=actor, reason=reason)
    elif points < 0:
        if -points > max(card.balance, 0):
            raise Explained("insufficient_points", "the card has {balance} points", balance=card.balance)
        book.take_back("adjustment", -points, allow_debt=False, actor=actor, reason=reason)
    if stamps > 0:
        book.add_stamps("adjustment", stamps, reason=reason, stamp_kind=stamp_kind)
    elif stamps < 0:
        if -stamps > book.stamps_of(stamp_kind):
            raise Explained(
                "validation_error",
                "the card has {stamps} stamps",
                stamps=book.stamps_of(stamp_kind),
                extra={"field": "stamps"},
            )
        book.add_stamps("adjustment", stamps, reason=reason, stamp_kind=stamp_kind)
    book.retier()
    book.touch("adjustment")
    audit(
        session,
        actor,
        "card.adjust",
        "card",
        card.code,
        {"points": points, "stamps": stamps, "reason": reason}
        | ({"stamp_kind": stamp_kind} if stamp_kind != 1 else {}),
    )
    return card, program, book


def set_status(
    session: Session, actor: Actor, code: str, status: str, reason: str | None = None
) -> tuple[Card, Program]:
    actor.require("manager")
    if status not in ("active", "blocked"):
        raise DomainError("validation_error", "status must be active or blocked", field="status")
    card, program = lock_card(session, actor.merchant_id, code)
    if card.status != status:
        card.status = status
        CardBook(session, card, program).touch(f"status:{status}")
        audit(
            session,
            actor,
            f"card.{'block' if status == 'blocked' else 'unblock'}",
            "card",
            card.code,
            {"reason": reason},
        )
    return card, program
