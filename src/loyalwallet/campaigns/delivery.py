"""A message (and optional points or coupon) put on one locked card: shared by push
campaigns and triggers.

Apple: the message goes in Card.message, which the pass shows in a field with a change
alert; `touch()` queues `card.changed`, whose listeners push the pass to devices. A
campaign chunk collects its cards (`changes`) and queues one `card.changed` for all of
them. A touch that changed nothing but the message has the reason MESSAGE_ONLY: the
Google object does not show Card.message, so the Google listener skips it.
Google: an outbox row `google.message` for the Wallet object's messages, written only
when a handler for that topic is registered (otherwise the worker would dead-letter it).
A campaign or trigger chunk collects its Google cards (`google_items`) and queues ONE
batched row for all of them (queue_google_messages), sent in batch requests by the
Google part; a trigger's texts differ per guest ({points}, {days}), so a card whose text
is not the row's carries its own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from loyalwallet import db
from loyalwallet.campaigns.models import Offer
from loyalwallet.campaigns.offers import issue
from loyalwallet.cards.book import MESSAGE_ONLY, CardBook, cards_changed
from loyalwallet.cards.models import Card, Coupon
from loyalwallet.outbox import handlers
from loyalwallet.outbox.service import enqueue
from loyalwallet.programs.models import Program

GOOGLE_TOPIC = "google.message"

# Other channels than the wallet: name -> deliver(session, campaign, pending {card_id:
# recipient_id}, now), which leaves the recipients it hands on "pending" for its own
# worker to mark. Put here by wiring.install() (wiring.CAMPAIGN_CHANNELS).
CHANNELS: dict[str, Callable[..., None]] = {}

# A card's Google message in a batched row: (card id, message id, header, body).
GoogleItem = tuple[int, str, str, str]


def google_messages_enabled() -> bool:
    """Whether this installation delivers google.message rows (see wiring.OUTBOX_HANDLERS)."""
    return GOOGLE_TOPIC in handlers.HANDLERS


# Program kind -> how a gift of points reaches a card whose points another engine keeps
# (wiring.py: iiko credits it with wallet/topup). Called as (session, card, points,
# operation id, comment) in the delivery's transaction; the operation id is the message
# id (one per campaign or trigger occasion and card), so a retried chunk credits once.
GIFT_SENDERS: dict[str, Callable[[Session, Card, int, str, str], bool]] = {}

# Scheduled trigger kind -> the part that lists its guests (campaigns.triggers.candidates):
# (session, the segment's card ids as a SELECT, merchant id, params, now, tz) -> [(card
# id, occasion, template values)]. Put here by wiring.install() (wiring.TRIGGER_CANDIDATES):
# subscriptions ending soon.
CANDIDATE_SOURCES: dict[str, Callable[..., list[tuple[int, str, dict[str, Any]]]]] = {}


@dataclass(frozen=True)
class Sent:
    points: int
    coupon: Coupon | None


def message_card(
    session: Session,
    card: Card,
    program: Program,
    *,
    header: str,
    body: str,
    message_id: str,
    source: str,
    source_id: int | None,
    points: int = 0,
    offer: Offer | None = None,
    coupon_cap: dt.datetime | None = None,
    reason: str = "campaign",
    ledger_kind: str = "campaign",
    google: bool = True,
    now: dt.datetime | None = None,
    changes: dict[str, list[int]] | None = None,
    google_items: list[GoogleItem] | None = None,
) -> Sent:
    """The card must be locked by the caller's transaction (cards.book.lock_card*).
    `google`: whether the card is in Google Wallet (see google_cards).
    `changes`: collect the card id under its touch reason instead of queueing its own
    `card.changed` (the caller queues them in bulk with cards_changed).
    `google_items`: collect (card id, message id, header, body) instead of queueing the card's own
    `google.message` (the caller queues them in one row with queue_google_messages).
    Raises DomainError (offer used up or ended) before writing anything."""
    book = CardBook(session, card, program, now)
    # The coupon first: when the offer is used up or over, DomainError leaves nothing written.
    coupon = None
    if offer is not None:
        coupon = issue(session, offer, card, source=source, source_id=source_id, now=book.now, cap=coupon_cap)
        book.rewards_touched = True
    credited = 0
    if points > 0 and program.kind == "bonus":
        book.credit(ledger_kind, points, reason=f"{source} {source_id}: {header}"[:500])
        credited = points
    elif points > 0 and program.kind in GIFT_SENDERS:
        # Credited by the engine that keeps the points; the card follows when it answers.
        GIFT_SENDERS[program.kind](session, card, points, message_id, f"{source} {source_id}: {header}")
    card.message = body[:500]
    card.message_at = book.now
    touched = reason if credited or coupon is not None else MESSAGE_ONLY
    book.touch(touched, queue=changes is None)
    if changes is not None:
        changes.setdefault(touched, []).append(card.id)
    if google and google_items is not None:
        google_items.append((card.id, message_id, header, body))
    elif google and google_messages_enabled():
        enqueue(
            session,
            card.merchant_id,
            GOOGLE_TOPIC,
            {"card_id": card.id, "header": header, "body": body, "message_id": message_id},
        )
    return Sent(credited, coupon)


def message_cards(
    session: Session,
    merchant_id: int,
    card_ids: list[int],
    *,
    header: str,
    body: str,
    batch: str,
    claim: Callable[[list[int], list[int]], list[int]],
    now: dt.datetime,
    place: dt.datetime | None = None,
) -> list[int]:
    """A message without points or a coupon on many cards: what message_card does to
    each (the message, a touch with MESSAGE_ONLY), for the chunk in a few statements
    (lock in id order, update) instead of an ORM card and a CardBook per card; then one
    card.changed and one batched google.message. Message ids: "<batch>-<card id>".
    `claim(active, inactive)`: called with the cards locked (active ones, blocked ones);
    returns the active cards to message (the caller's exactly-once record, e.g. the
    campaign's recipient rows: a retried chunk gets only the cards not done).
    `place`: the google.message row's place in the queue (queue_google_messages).
    Returns the cards messaged."""
    stmt = select(Card.id, Card.status).where(db.in_ids(Card.id, card_ids)).order_by(Card.id)
    rows = session.execute(stmt if db.is_sqlite() else stmt.with_for_update()).all()
    active = [card_id for card_id, status in rows if status == "active"]
    todo = claim(active, [card_id for card_id, status in rows if status != "active"])
    if not todo:
        return []
    if len(todo) != len(active):
        keep = set(todo)
        todo = [i for i in active if i in keep]  # id order
    session.execute(
        update(Card)
        .where(db.in_ids(Card.id, todo))
        .values(
            message=body[:500], message_at=now, version=Card.version + 1, updated_at=now, pass_updated_at=now
        )
        .execution_options(synchronize_session=False)
    )
    cards_changed(session, merchant_id, todo, MESSAGE_ONLY)
    in_google = google_cards(session, todo)
    items = [(card_id, f"{batch}-{card_id}", header, body) for card_id in todo if card_id in in_google]
    queue_google_messages(session, merchant_id, items, batch, place=place)
    return todo


def queue_google_messages(
    session: Session,
    merchant_id: int,
    items: list[GoogleItem],
    batch: str,
    place: dt.datetime | None = None,
) -> None:
    """One batched `google.message` row for a chunk's cards (wallet.google.handlers):
    `batch` names the sender ("campaign-12", "trigger-3") for its delivered / failed
    counts. The row's header and body are the first card's; a card with another text
    carries its own: [card id, message id, header, body] instead of [card id, message id].
    `place` (enqueue): a campaign passes its chunk row's created_at, so its Google rows
    (one request per 100 cards, ~0.1 s each) are not queued behind the apple.push rows
    of the chunks before (placed at their card.changed: one row per 100 devices, each
    taking the time of 100 pushes); otherwise a 10,000-card campaign's last Google
    messages waited for nearly all of its Apple pushes (bench/fanout.py)."""
    if not items or not google_messages_enabled():
        return
    header, body = items[0][2], items[0][3]
    cards = [[c, m] if (h, b) == (header, body) else [c, m, h, b] for c, m, h, b in items]
    enqueue(
        session,
        merchant_id,
        GOOGLE_TOPIC,
        {"cards": cards, "header": header, "body": body, "batch": batch},
        place=place,
    )


def google_cards(session: Session, card_ids: list[int]) -> set[int]:
    """The cards among these that are in Google Wallet (have a Google object): only
    they get a `google.message` row (the others would be skipped by its handler)."""
    if not card_ids or not google_messages_enabled():
        return set()
    from loyalwallet.wallet.google.models import GoogleObject

    return set(session.scalars(select(GoogleObject.card_id).where(db.in_ids(GoogleObject.card_id, card_ids))))
