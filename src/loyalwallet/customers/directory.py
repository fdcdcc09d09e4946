"""The admin's guest directory: find guests (phone, card code, name), what cards they
hold, and a guest's recent purchases. Queries only; the pages in customers/pages.py
render them."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalwallet.cards.codes import normalise
from loyalwallet.cards.models import Card
from loyalwallet.checkout.models import Purchase
from loyalwallet.customers import service as customers
from loyalwallet.customers.models import Customer
from loyalwallet.errors import DomainError, not_found
from loyalwallet.programs.models import Program
from loyalwallet.search import rules as name_rules
from loyalwallet.search import service as name_search

PAGE = 50
PHONE_LIKE = re.compile(r"^[+\d][\d\s()\-]{6,}$")


def find_guests(
    session: Session, merchant_id: int, q: str, before: int | None, *, page: int = PAGE
) -> tuple[list[Customer], str]:
    """Guests matching `q` (newest first, at most `page`) and how they were found:
    "all" (no query), "phone", "card" or "name"."""
    q = q.strip()
    base = select(Customer).where(Customer.merchant_id == merchant_id)
    if not q:
        stmt = base.where(Customer.id < before) if before else base
        return list(session.scalars(stmt.order_by(Customer.id.desc()).limit(page))), "all"
    if PHONE_LIKE.match(q):
        try:
            found = customers.find_by_phone(session, merchant_id, q)
        except DomainError:
            found = None
        if found is not None:
            return [found], "phone"
    code = normalise(q)
    card = session.scalar(select(Card).where(Card.merchant_id == merchant_id, Card.code == code))
    if card is not None and card.customer_id is not None:
        customer = session.get(Customer, card.customer_id)
        return ([customer] if customer else []), "card"
    # Names are sealed: the token index narrows down, decryption confirms.
    ids = name_search.search(session, merchant_id, q, limit=page * 2)
    if before:
        ids = [i for i in ids if i < before]
    rows = session.scalars(base.where(Customer.id.in_(ids)).order_by(Customer.id.desc())).all() if ids else []
    return [c for c in rows if name_rules.matches(customers.view(c)["name"], q)][:page], "name"


def card_summaries(session: Session, customer_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Each guest's cards with the program's name and kind, for the guest list."""
    out: dict[int, list[dict[str, Any]]] = {cid: [] for cid in customer_ids}
    if not customer_ids:
        return out
    rows = session.execute(
        select(Card, Program.name, Program.kind)
        .join(Program, Program.id == Card.program_id)
        .where(Card.customer_id.in_(customer_ids))
        .order_by(Card.id)
    ).all()
    for card, name, kind in rows:
        assert card.customer_id is not None  # the query asked for these guests' cards
        out[card.customer_id].append({"card": card, "program": name, "kind": kind})
    return out


def get_guest(session: Session, merchant_id: int, customer_id: int) -> Customer:
    """The merchant's guest, or not_found (another merchant's guest is not found either)."""
    customer = session.get(Customer, customer_id)
    if customer is None or customer.merchant_id != merchant_id:
        raise not_found("guest")
    return customer


def recent_purchases(session: Session, card_id: int, limit: int = 20) -> list[Purchase]:
    """A card's purchases, newest first."""
    return list(
        session.scalars(
            select(Purchase).where(Purchase.card_id == card_id).order_by(Purchase.id.desc()).limit(limit)
        )
    )
