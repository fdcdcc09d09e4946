"""Outbox handlers of cards: a programme change refreshes its cards, referral rewards.

What a changed card sets off (Apple push, Google patch) is listed in wiring.py under
CARD_CHANGED_LISTENERS; each listener reads the row's cards with `changed_cards`.
"""

from __future__ import annotations

from sqlalchemy import select, update

from loyalwallet import db
from loyalwallet.cards.book import CardBook, cards_changed, lock_card_by_id
from loyalwallet.cards.models import Card
from loyalwallet.outbox.handlers import Delivery, Permanent


def changed_cards(msg: Delivery) -> list[int]:
    """The cards of a card.changed row: {"card_id"} (one touch) or {"card_ids": [...]}
    (a campaign chunk, see cards.book.cards_changed)."""
    if "card_ids" in msg.payload:
        return [int(i) for i in msg.payload["card_ids"]]
    return [int(msg.payload["card_id"])]


# Cards per card.changed row of a program change: the listeners handle a row's cards
# together (one multiplexed apple.push per row), as for a campaign chunk.
PROGRAM_CHUNK = 100


def program_changed(msg: Delivery) -> None:
    """A new design or rules: every card of the program must refresh in the wallets."""
    program_id = msg.payload["program_id"]
    with db.transaction() as session:
        cards = session.execute(
            select(Card.id, Card.merchant_id).where(Card.program_id == program_id).order_by(Card.id)
        ).all()
        if not cards:
            return
        now = db.utcnow()
        session.execute(
            update(Card)
            .where(Card.program_id == program_id)
            .values(version=Card.version + 1, pass_updated_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        merchant_id = cards[0].merchant_id
        ids = [c.id for c in cards]
        for start in range(0, len(ids), PROGRAM_CHUNK):
            cards_changed(session, merchant_id, ids[start : start + PROGRAM_CHUNK], "program")


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
