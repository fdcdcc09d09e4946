"""Guests of an iiko programme: joining (the guest and card made or found in iiko),
following iiko's balance and category, and gifts credited in iiko.

Joining runs inside the join's transaction, iiko first: when iiko refuses (a phone it
rejects, a used-up range) or is down, DomainError rolls our side back and nothing is
written here. iiko may keep a customer it created; the next try finds it by phone and
reuses it (no second customer, no second card).

The card's balance mirrors iiko's wallet: each change read from iiko is written as an
"adjustment" ledger entry (reason "iiko"), so the cached balance still equals the sum
of entries (check-ledger) and the card's history shows when iiko's figure moved.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalwallet.cards.book import CardBook, cards_changed, lock_card_by_id
from loyalwallet.cards.models import Card
from loyalwallet.customers.service import GuestData, find_by_phone
from loyalwallet.db import utcnow
from loyalwallet.errors import DomainError, Explained
from loyalwallet.integrations.iiko import rules
from loyalwallet.integrations.iiko.client import Guest, IikoClient, IikoError
from loyalwallet.integrations.iiko.models import IikoConnection, IikoGuest
from loyalwallet.integrations.iiko.service import as_domain, client_for, require
from loyalwallet.programs.models import Program

log = logging.getLogger("loyalwallet.iiko")
SYNC_REASON = "iiko"


def _birthday(day: dt.date | None) -> str | None:
    return f"{day.isoformat()} 00:00:00.000" if day else None


def _next_number(session: Session, conn: IikoConnection) -> str:
    if conn.card_next > conn.card_last:
        raise Explained(
            "iiko_card_range_exhausted",
            "all card numbers {card_first}–{card_last} are given out; ask the iiko dealer for a new range",
            card_first=conn.card_first,
            card_last=conn.card_last,
        )
    number = conn.card_next
    conn.card_next = number + 1
    return str(number)


def _code_taken(session: Session, merchant_id: int, code: str) -> bool:
    return (
        session.scalar(select(Card.id).where(Card.merchant_id == merchant_id, Card.code == code)) is not None
    )


def open_card(session: Session, program: Program, guest: GuestData) -> tuple[str, Callable[[Card], None]]:
    """The card number for a guest joining an iiko programme, and what to record once
    our card exists. iiko's existing customer and card are used when iiko knows the phone."""
    conn = require(session, program.merchant_id)
    client = client_for(conn)
    try:
        found = client.find("phone", guest.phone)
        body = {
            "phone": guest.phone,
            "name": guest.name,
            "birthday": _birthday(guest.birthday),
            "email": guest.email,
            "consentStatus": 1,  # our join records consent to personal-data processing
        }
        # Promo messages only with the guest's marketing consent: iiko assumes "yes" for a
        # new customer not told otherwise. A consent given in this join follows as an
        # iiko.consent row (consent.py); a customer iiko knows keeps its own flag unless
        # our guest has said yes.
        ours = find_by_phone(session, program.merchant_id, guest.phone)
        promo = bool(ours is not None and ours.marketing_consent)
        if found is None or promo:
            body["shouldReceivePromoActionsInfo"] = promo
        if found is not None:
            body["id"] = found.id
        body = {k: v for k, v in body.items() if v is not None}
        try:
            customer_id = client.create_or_update(body)
        except IikoError as exc:
            if exc.status == 400:
                raise Explained(
                    "iiko_phone_rejected",
                    "iiko did not accept this guest: {description}",
                    description=exc.description,
                ) from exc
            raise
        number = found.card_numbers[0] if found is not None and found.card_numbers else None
        tries = 0
        while number is None:
            candidate = _next_number(session, conn)
            if _code_taken(session, program.merchant_id, candidate):
                continue
            try:
                client.add_card(customer_id, candidate)
                number = candidate
            except IikoError as exc:
                tries += 1
                if exc.status != 400 or tries >= 20:
                    raise
                # The number is someone's already (given out by hand at the till): the next one.
        if conn.program_id and (found is None or conn.wallet_id not in found.balances):
            client.add_to_program(customer_id, conn.program_id)
        info = client.find("id", customer_id)
    except IikoError as exc:
        raise as_domain(exc) from exc
    if _code_taken(session, program.merchant_id, number):
        raise DomainError("conflict", "this iiko card number already belongs to another card here")

    def after(card: Card) -> None:
        session.add(
            IikoGuest(
                card_id=card.id, merchant_id=card.merchant_id, customer_id=customer_id, card_number=number
            )
        )
        session.flush()
        if info is not None:
            apply(session, conn, card, program, info, touch=False)

    return number, after


def apply(
    session: Session,
    conn: IikoConnection,
    card: Card,
    program: Program,
    info: Guest,
    *,
    touch: bool = True,
    queue: bool = True,
) -> bool:
    """Bring a (locked) card to iiko's figures; True when something changed (and, with
    touch, the wallets were told; queue=False: the caller queues card.changed for many)."""
    link = session.get(IikoGuest, card.id)
    balance = info.balances.get(conn.wallet_id or "", Decimal(0))
    points = rules.points(balance)
    category = next((cid for cid in info.category_ids if cid in (conn.tiers or {})), None)
    names = dict(zip(info.category_ids, info.category_names, strict=False))
    tier = rules.tier_of(info.category_ids, conn.tiers or {}) or card.tier
    now = utcnow()
    book = CardBook(session, card, program, now)
    changed = False
    delta = points - card.balance
    if delta > 0:
        book.credit("adjustment", delta, reason=SYNC_REASON, ttl_days=None)
        changed = True
    elif delta < 0:
        book.take_back("adjustment", -delta, allow_debt=True, reason=SYNC_REASON)
        changed = True
    if tier != card.tier:
        book.set(tier=tier)
        changed = True
    if link is not None:
        if info.last_order and info.last_order != link.last_order and link.last_order is not None:
            book.set(visits=card.visits + 1, last_visit_at=now)
        link.balance = points
        link.category_id = category or (info.category_ids[0] if info.category_ids else None)
        link.category_name = names.get(link.category_id or "")
        link.last_order = info.last_order
        link.synced_at = now
        link.activity_at = None
    if changed and touch:
        book.touch(SYNC_REASON, queue=queue)
    return changed


def sync_cards(merchant_id: int, card_ids: list[int]) -> int:
    """Read each card's iiko customer and apply it. Raises IikoError (the caller decides
    retry or dead letter); cards already synced in this call keep their new values."""
    from loyalwallet import db

    with db.read() as session:
        conn = require(session, merchant_id)
        client = client_for(conn)
        links = {
            g.card_id: g.customer_id
            for g in session.scalars(select(IikoGuest).where(IikoGuest.card_id.in_(card_ids)))
        }
    # iiko first (no lock held while waiting for it), then one transaction for the chunk
    # and one card.changed row for the cards that moved (the listeners take many at once).
    infos = {card_id: client.find("id", links[card_id]) for card_id in sorted(links)}
    moved: list[int] = []
    with db.transaction() as session:
        conn = require(session, merchant_id)
        for card_id, info in infos.items():
            if info is None:
                continue
            card, program = lock_card_by_id(session, card_id)
            if apply(session, conn, card, program, info, queue=False):
                moved.append(card_id)
        cards_changed(session, merchant_id, moved, SYNC_REASON)
    return len(moved)


def topup(
    merchant_id: int, client: IikoClient, customer_id: str, wallet_id: str, points: int, comment: str
) -> None:
    client.topup(customer_id, wallet_id, Decimal(points), comment)


def topup_applied(client: IikoClient, customer_id: str, mark: str, since: dt.datetime) -> bool:
    """Whether iiko's transaction report of the customer holds a transaction whose comment
    carries `mark` (our operation id), from a minute before the gift was queued to now."""
    start = since.replace(tzinfo=since.tzinfo or dt.UTC) - dt.timedelta(minutes=1)
    end = utcnow() + dt.timedelta(minutes=5)  # iiko's clock may run a little ahead
    return any(mark in str(t.get("comment") or "") for t in client.transactions(customer_id, start, end))
