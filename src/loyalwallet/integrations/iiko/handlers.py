"""Outbox handlers and the periodic job of iiko.

- iiko.sync  {"card_ids"}: read each card's customer in iiko (customer/info) and bring
  balance, category (→ tier) and visits to iiko's values; a change touches the card, so
  card.changed wakes the Apple devices and patches the Google object as for any card.
- iiko.topup {"operation_id"}: credit a gift of our campaigns/triggers in iiko
  (wallet/topup) once: the IikoTopup row (written with the gift) is marked done, and a
  retried delivery of a done operation sends nothing. Then the card is synced.
- iiko.order {"event"}: an iiko order webhook event for a programme of ours with iiko
  as the till (orders.py).
- periodic `iiko-reconcile`: a bounded number of cards per merchant and run, cards with
  recent iiko activity first, then the longest unsynced; queued as iiko.sync rows of
  SYNC_CHUNK cards. The client paces calls under LOYALWALLET_IIKO_RATE.

Failures: iiko down, timeouts, 429 and 5xx → Retry (with iiko's Retry-After); the cards
keep their last values. Other refusals → Permanent with iiko's text. Either way the
connection's state and last error (plain words) are recorded for the admin page and
`loyalwallet iiko status`. Logs carry ids only, never phones or names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from loyalwallet import db
from loyalwallet.config import env
from loyalwallet.db import utcnow
from loyalwallet.errors import DomainError, Explained
from loyalwallet.integrations.iiko import guests, rules, service
from loyalwallet.integrations.iiko.client import IikoError
from loyalwallet.integrations.iiko.models import IikoConnection, IikoGuest, IikoTopup
from loyalwallet.outbox.handlers import Delivery, Permanent, Retry
from loyalwallet.outbox.service import enqueue

log = logging.getLogger("loyalwallet.iiko")
SYNC_CHUNK = 50


def guarded(merchant_id: int | None, fn: Callable[[], Any]) -> Any:
    if merchant_id is None:
        raise Permanent("an iiko row without a merchant")
    try:
        result = fn()
    except IikoError as exc:
        message = rules.plain(exc.status, exc.description)
        with db.transaction() as session:
            service.record_failure(session, merchant_id, message)
        log.warning("iiko merchant %s: %s", merchant_id, message)
        if exc.retryable or exc.status == 401:
            raise Retry(message, after=exc.retry_after) from exc
        raise Permanent(message) from exc
    except DomainError as exc:
        raise Permanent(exc.detail) from exc
    with db.transaction() as session:
        service.record_success(session, merchant_id)
    return result


def iiko_sync(msg: Delivery) -> None:
    try:
        card_ids = [int(i) for i in msg.payload["card_ids"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise Permanent(f"bad iiko.sync payload: {exc!r}") from exc
    merchant_id = msg.merchant_id
    guarded(merchant_id, lambda: guests.sync_cards(int(merchant_id or 0), card_ids))


def _topup(merchant_id: int, operation_id: str) -> None:
    """Credit the gift once. iiko's wallet/topup has no idempotency key, so the row is
    marked "sent" before the call; a later delivery of a "sent" row (the call timed out,
    or the worker died, after iiko may have applied it) first looks the operation id up
    in iiko's transaction report (it is in the topup's comment) and sends only if absent."""
    with db.transaction() as session:
        row = session.get(IikoTopup, operation_id)
        if row is None or row.state == "done":
            return  # never queued with a row, or already credited: nothing to send again
        conn = service.require(session, merchant_id)
        client = service.client_for(conn)
        link = session.get(IikoGuest, row.card_id)
        if link is None or not conn.wallet_id:
            raise Explained("iiko_not_connected", "card {card_id} has no iiko guest", card_id=row.card_id)
        customer_id, wallet_id, points, comment = link.customer_id, conn.wallet_id, row.points, row.comment
        card_id, sent_before, since = row.card_id, row.state == "sent", row.created_at
        row.state = "sent"
    mark = f"[{operation_id}]"
    applied = sent_before and guests.topup_applied(client, customer_id, mark, since)
    if not applied:
        text = f"{comment[: 199 - len(mark)]} {mark}"  # the mark whole: it is looked up
        guests.topup(merchant_id, client, customer_id, wallet_id, points, text)
    with db.transaction() as session:
        done = session.get(IikoTopup, operation_id)
        if done is not None:
            done.state, done.done_at, done.error = "done", utcnow(), None
    guests.sync_cards(merchant_id, [card_id])


def iiko_topup(msg: Delivery) -> None:
    operation_id = str(msg.payload.get("operation_id") or "")
    if not operation_id:
        raise Permanent("bad iiko.topup payload: no operation_id")
    merchant_id = msg.merchant_id
    guarded(merchant_id, lambda: _topup(int(merchant_id or 0), operation_id))


def queue_gift(session: Any, card: Any, points: int, operation_id: str, comment: str) -> bool:
    """A gift of our campaigns/triggers to a card of an iiko programme: one IikoTopup row
    per operation id and an iiko.topup row, in the caller's transaction. False when the
    operation was queued before (a retried campaign chunk)."""
    if points <= 0 or session.get(IikoTopup, operation_id) is not None:
        return False
    session.add(
        IikoTopup(
            operation_id=operation_id,
            merchant_id=card.merchant_id,
            card_id=card.id,
            points=points,
            comment=comment[:200],
            state="pending",
        )
    )
    session.flush()
    enqueue(session, card.merchant_id, "iiko.topup", {"operation_id": operation_id})
    return True


def interval() -> float:
    return max(10.0, float(env("IIKO_RECONCILE_SECONDS", "300") or 300))


def batch() -> int:
    return max(1, int(env("IIKO_SYNC_BATCH", "500") or 500))


def reconcile() -> int:
    """Queue iiko.sync rows for a bounded number of cards per connected merchant."""
    queued = 0
    with db.transaction() as session:
        for merchant_id in session.scalars(select(IikoConnection.merchant_id)):
            ids = list(
                session.scalars(
                    select(IikoGuest.card_id)
                    .where(IikoGuest.merchant_id == merchant_id)
                    .order_by(
                        IikoGuest.activity_at.desc().nulls_last(),
                        IikoGuest.synced_at.asc().nulls_first(),
                        IikoGuest.card_id,
                    )
                    .limit(batch())
                )
            )
            for start in range(0, len(ids), SYNC_CHUNK):
                enqueue(session, merchant_id, "iiko.sync", {"card_ids": ids[start : start + SYNC_CHUNK]})
            queued += len(ids)
    return queued
