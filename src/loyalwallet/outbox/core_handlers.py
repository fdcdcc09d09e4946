"""Handlers of the core's own topics and its periodic jobs."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update

from loyalwallet import db
from loyalwallet.cards.models import Card
from loyalwallet.cards.service import CardBook, cards_changed, expire_points, lock_card_by_id
from loyalwallet.outbox.handlers import Delivery, Permanent, Retry, every, handles
from loyalwallet.outbox.service import enqueue

log = logging.getLogger("loyalwallet.worker")

# Further fan-out of a changed card (Apple push, Google patch) is registered by the
# wallet parts; they add their functions here.
CARD_CHANGED_LISTENERS: list = []


@handles("card.changed")
def card_changed(msg: Delivery) -> None:
    for listener in CARD_CHANGED_LISTENERS:
        listener(msg)


def changed_cards(msg: Delivery) -> list[int]:
    """The cards of a card.changed row: {"card_id"} (one touch) or {"card_ids": [...]}
    (a campaign chunk, see cards.service.cards_changed)."""
    if "card_ids" in msg.payload:
        return [int(i) for i in msg.payload["card_ids"]]
    return [int(msg.payload["card_id"])]


# Cards per card.changed row of a program change: the listeners handle a row's cards
# together (one multiplexed apple.push per row), as for a campaign chunk.
PROGRAM_CHUNK = 100


@handles("program.changed")
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


def event_id(msg: Delivery) -> int:
    """The stable id of a business event: the id of the row `emit_event` wrote, kept by
    follow-up rows (see business_event), so receivers can de-duplicate on it."""
    return int(msg.payload.get("event_id") or msg.id)


def _listener_name(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{getattr(fn, '__qualname__', repr(fn))}"


@handles("event")
def business_event(msg: Delivery) -> None:
    """Business events feed webhooks and triggers; their parts add listeners.

    Listeners are independent: when some fail and others succeed, only the failed ones
    are tried again, in a follow-up row carrying the same event id. Retrying the whole
    row would repeat what already succeeded (a webhook fan-out twice over)."""
    only = msg.payload.get("listeners")
    to_run = [fn for fn in EVENT_LISTENERS if only is None or _listener_name(fn) in only]
    failed: list[str] = []
    errors: list[str] = []
    for listener in to_run:
        try:
            listener(msg)
        except Permanent as exc:
            log.warning("event %s: listener %s gave up: %s", event_id(msg), _listener_name(listener), exc)
        except Exception as exc:
            log.warning("event %s: listener %s failed: %r", event_id(msg), _listener_name(listener), exc)
            failed.append(_listener_name(listener))
            errors.append(f"{_listener_name(listener)}: {type(exc).__name__}: {exc}")
    if not failed:
        return
    if len(failed) == len(to_run):
        raise Retry("; ".join(errors))  # nothing succeeded: retry this very row
    left = msg.max_attempts - msg.attempts
    if left <= 0:
        raise Permanent("; ".join(errors))
    from loyalwallet.outbox.worker import backoff

    with db.transaction() as session:
        enqueue(
            session,
            msg.merchant_id,
            "event",
            {**msg.payload, "event_id": event_id(msg), "listeners": failed},
            delay=dt.timedelta(seconds=backoff(msg.attempts)),
            max_attempts=left,
        )


# Functions taking the event's Delivery (payload {"name", "data", "at"}).
EVENT_LISTENERS: list[Callable[[Delivery], None]] = []


@every("expire-points", 60.0)
def _expire() -> None:
    expire_points()
