"""Outbox handlers of Google Wallet.

- card.changed (listener): queue `google.patch` for cards that have a Google object,
  except for a touch that changed only the card's message (the object does not show it).
- google.patch  {"card_id"}: insert or patch the card's class and object.
- google.class  {"program_id"}: upsert every class of a program (after import-key).
- google.gift {"certificate_id"}: upsert a gift certificate's class and object (gifts.py).
- google.message {"card_id", "header", "body", "message_id"}: addMessage on the card's
  object (the campaign push contract). At most 3 messages per card in 24 hours go as
  TEXT_AND_NOTIFY (Google's limit for notifications); later ones go as TEXT: shown on
  the card, without a notification. A card whose guest never got a Google link is
  skipped. A repeated message_id is not added twice.
  Batched (a campaign or trigger chunk): {"cards": [[card_id, message_id], ...], "header",
  "body", "batch"} (a card with a text of its own: [card_id, message_id, header, body]):
  the cards' addMessage calls go in batch requests (messages.py); each card's
  outcome is recorded, so a retry skips the cards done; a card Google refuses for good
  is recorded failed and the others go on; the cards to try again (outage, 5xx) are
  queued again in a row of their own (or, when none went, this row is retried).
- google.check {"card_ids", "at"}: GET objects not known saved, recording hasUsers;
  queued by the periodic job `google-saves` (saves.py), a bounded number per run.

Failures: outages, timeouts, 429 and 5xx are retried by the outbox with backoff
(honouring Retry-After); other 4xx answers are permanent and dead-letter the delivery
with Google's message, where the admin's failed deliveries show it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import select

from loyalwallet import db
from loyalwallet.cards.book import MESSAGE_ONLY
from loyalwallet.cards.handlers import changed_cards
from loyalwallet.errors import DomainError
from loyalwallet.outbox.handlers import Delivery, Permanent, Retry
from loyalwallet.outbox.service import enqueue
from loyalwallet.wallet.google import gifts, messages, saves
from loyalwallet.wallet.google.client import GoogleApiError, TokenError
from loyalwallet.wallet.google.issuer import issuer_for
from loyalwallet.wallet.google.models import GoogleObject
from loyalwallet.wallet.google.sync import send_message, sync_card, sync_program

log = logging.getLogger("loyalwallet.google")


def _guarded(fn: Callable[[], Any]) -> Any:
    """Run a Google call, turning failures into the outbox's retry or dead letter."""
    try:
        return fn()
    except TokenError as exc:
        if exc.retryable:
            raise Retry(str(exc), after=exc.retry_after) from exc
        raise Permanent(
            f"Google refused the service-account key ({exc.reason or exc.status}): {exc.message}"
        ) from exc
    except GoogleApiError as exc:
        if exc.retryable or exc.status == 401:
            raise Retry(str(exc), after=exc.retry_after) from exc
        raise Permanent(str(exc)) from exc
    except httpx.HTTPError as exc:
        raise Retry(f"Google Wallet unreachable: {type(exc).__name__}: {exc}") from exc
    except DomainError as exc:
        raise Permanent(exc.detail) from exc


def on_card_changed(msg: Delivery) -> None:
    """Changed cards with a Google object get a `google.patch` each; a touch that changed
    only Card.message (MESSAGE_ONLY) gets none: the object does not show the message
    (campaign messages reach Google as `google.message`)."""
    if msg.payload.get("reason") == MESSAGE_ONLY or msg.merchant_id is None:
        return
    card_ids = changed_cards(msg)
    merchant_id = msg.merchant_id
    with db.read() as session:
        issuer = issuer_for(session, merchant_id)
        if issuer is None or not issuer.syncs:
            return
        in_google = session.scalars(
            select(GoogleObject.card_id)
            .where(GoogleObject.card_id.in_(card_ids))
            .order_by(GoogleObject.card_id)
        ).all()
    if not in_google:
        return
    # Queued now, not at the change's place (enqueue(place=)): next to the chunk's
    # google.message rows they would fight for the same object locks (Retry, 2 s).
    with db.transaction() as session:
        for card_id in in_google:
            enqueue(
                session,
                merchant_id,
                "google.patch",
                {
                    "card_id": card_id,
                    "version": msg.payload.get("version"),
                    "reason": msg.payload.get("reason"),
                },
            )


def google_patch(msg: Delivery) -> None:
    _guarded(lambda: sync_card(int(msg.payload["card_id"])))


def google_gift(msg: Delivery) -> None:
    """google.gift {"certificate_id"}: upsert the certificate's gift-card class and object."""
    _guarded(lambda: gifts.sync_gift(int(msg.payload["certificate_id"])))


def google_class(msg: Delivery) -> None:
    _guarded(lambda: sync_program(int(msg.payload["program_id"])))


def google_message(msg: Delivery) -> None:
    p = msg.payload
    if "cards" in p:
        _google_messages(msg)
        return
    try:
        card_id, header, body = int(p["card_id"]), str(p["header"]), str(p["body"])
        message_id = str(p["message_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise Permanent(f"bad google.message payload: {exc!r}") from exc
    _guarded(lambda: send_message(card_id, msg.merchant_id, header, body, message_id))


def _google_messages(msg: Delivery) -> None:
    p = msg.payload
    try:
        header, body, batch = str(p["header"]), str(p["body"]), str(p.get("batch") or "")
        entries = {str(e[1]): list(e) for e in p["cards"]}
        items = [(int(e[0]), str(e[1])) for e in p["cards"]]
        # A card whose text is not the row's (a trigger's {points}, {days}) carries its own.
        texts = {str(e[1]): (str(e[2]), str(e[3])) for e in p["cards"] if len(e) >= 4}
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise Permanent(f"bad google.message payload: {exc!r}") from exc
    result: messages.BatchResult = _guarded(
        lambda: messages.send_batch(msg.merchant_id, header, body, batch, items, texts)
    )
    if result.failed:
        log.warning("%s Google message(s) of %s refused: %s", len(result.failed), batch, result.failed[0])
    if not result.retry:
        return
    if len(result.retry) == len(items):  # nothing went: the row itself is tried again
        raise Retry(result.errors[0], after=result.retry_after)
    # Some went: only the others are tried again, in a row of their own.
    with db.transaction() as session:
        enqueue(
            session,
            msg.merchant_id,
            "google.message",
            {**p, "cards": [entries[m] for _, m in result.retry]},
            delay=dt.timedelta(seconds=result.retry_after or RETRY_SECONDS),
        )


# The delay before the cards of a chunk that failed for a while are tried again.
RETRY_SECONDS = 30.0


def google_check(msg: Delivery) -> None:
    p = msg.payload
    try:
        card_ids = [int(i) for i in p["card_ids"]]
        at = dt.datetime.fromisoformat(str(p["at"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise Permanent(f"bad google.check payload: {exc!r}") from exc
    _guarded(lambda: saves.check(msg.merchant_id, card_ids, at))
