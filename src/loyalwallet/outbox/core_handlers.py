"""Handlers of the core's own topics and its periodic jobs."""

from __future__ import annotations

from sqlalchemy import select

from loyalwallet import db
from loyalwallet.cards.models import Card
from loyalwallet.cards.service import CardBook, expire_points, lock_card_by_id
from loyalwallet.outbox.handlers import Delivery, Permanent, every, handles
from loyalwallet.outbox.service import enqueue

# Further fan-out of a changed card (Apple push, Google patch) is registered by the
# wallet parts; they add their functions here.
CARD_CHANGED_LISTENERS: list = []


@handles("card.changed")
def card_changed(msg: Delivery) -> None:
    for listener in CARD_CHANGED_LISTENERS:
        listener(msg)


@handles("program.changed")
def program_changed(msg: Delivery) -> None:
    """A new design or rules: every card of the program must refresh in the wallets."""
    program_id = msg.payload["program_id"]
    with db.transaction() as session:
        card_ids = session.scalars(select(Card.id).where(Card.program_id == program_id)).all()
        now = db.utcnow()
        for card_id in card_ids:
            card = session.get(Card, card_id)
            assert card is not None
            card.version += 1
            card.pass_updated_at = now
            card.updated_at = now
            enqueue(
                session,
                card.merchant_id,
                "card.changed",
                {"card_id": card.id, "version": card.version, "reason": "program"},
            )


@handles("referral.reward")
def referral_reward(msg: Delivery) -> None:
    """Credit the referrer once their friend has made a first purchase."""
    payload = msg.payload
    with db.transaction() as session:
        try:
            card, program = lock_card_by_id(session, payload["card_id"])
        except Exception as exc:  # the referrer's card is gone
            raise Permanent(str(exc)) from exc
        if card.status != "active":
            return
        book = CardBook(session, card, program)
        book.credit(
            "referral", int(payload["points"]), reason=f"referral: friend card {payload['friend_card_id']}"
        )
        book.touch("referral")


@handles("event")
def business_event(msg: Delivery) -> None:
    """Business events feed webhooks and triggers; their parts add listeners."""
    for listener in EVENT_LISTENERS:
        listener(msg)


EVENT_LISTENERS: list = []


@every("expire-points", 60.0)
def _expire() -> None:
    expire_points()
