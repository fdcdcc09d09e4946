"""Outbox side of Apple Wallet: a changed card wakes the devices that hold its pass.

card.changed (queued by CardBook.touch, and per card by program.changed) →
`wake_devices`: stamps the pass's registrations with a commit-ordered change number
(updates.py) and queues one `apple.push` per device token, unless one is already queued
and not yet started (a burst of changes collapses into one push per device: one push
makes the device fetch every changed pass of ours) →
`push`: one HTTP/2 request to APNs through the process's long-lived client.

The queued-push marker (apple_push_pending) is row-locked by the listener until it
commits, and the push handler deletes it before pushing: so a push never leaves before
the change it announces is visible to the device's next question.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from loyalwallet import db
from loyalwallet.cards.models import Coupon
from loyalwallet.outbox.handlers import Delivery, Permanent, Retry, handles
from loyalwallet.outbox.service import enqueue
from loyalwallet.wallet.apple import credentials, updates
from loyalwallet.wallet.apple.models import ApplePushPending, AppleRegistration

log = logging.getLogger("loyalwallet.apple")

# A marker older than this is taken as lost (its push row died without running).
PENDING_STALE = dt.timedelta(minutes=10)


def _insert(session: Session):  # type: ignore[no-untyped-def]
    if db.is_sqlite():
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    return insert(ApplePushPending)


def queue_push(session: Session, merchant_id: int | None, token: str, pass_type_id: str) -> bool:
    """Queue a push to `token` unless one is queued and not started. True: queued."""
    now = db.utcnow()
    inserted = session.execute(
        _insert(session)
        .values(push_token=token, pass_type_id=pass_type_id, queued_at=now)
        .on_conflict_do_nothing()
        .returning(ApplePushPending.push_token)
    ).first()
    if inserted is None:
        # Lock the marker: its push cannot start (it deletes the marker first) before
        # this transaction, and the change it stamped, are committed.
        queued_at = session.scalar(
            db.for_update(select(ApplePushPending.queued_at).where(ApplePushPending.push_token == token))
        )
        if queued_at is not None and queued_at > now - PENDING_STALE:
            return False
        if queued_at is None:
            session.execute(
                _insert(session)
                .values(push_token=token, pass_type_id=pass_type_id, queued_at=now)
                .on_conflict_do_nothing()
            )
        else:
            session.execute(
                update(ApplePushPending).where(ApplePushPending.push_token == token).values(queued_at=now)
            )
    enqueue(session, merchant_id, "apple.push", {"token": token, "pass_type_id": pass_type_id})
    return True


def wake_devices(msg: Delivery) -> None:
    """card.changed listener: mark the card's passes (and its coupons' passes) changed
    for their devices and queue a push per device token."""
    card_id = int(msg.payload["card_id"])
    coupon_ids = select(Coupon.id).where(Coupon.card_id == card_id).scalar_subquery()
    mine = or_(AppleRegistration.card_id == card_id, AppleRegistration.coupon_id.in_(coupon_ids))
    with db.transaction() as session:
        targets = session.execute(
            select(AppleRegistration.push_token, AppleRegistration.pass_type_id).where(mine).distinct()
        ).all()
        if not targets:
            return
        seq = updates.stamp(session)
        session.execute(update(AppleRegistration).where(mine).values(change_seq=seq))
        for token, pass_type_id in sorted(set(targets)):
            queue_push(session, msg.merchant_id, token, pass_type_id)


def forget_token(token: str, invalid_since_ms: int | None = None) -> int:
    """APNs says the token is dead: drop its registrations (those not renewed since)."""
    with db.transaction() as session:
        stmt = delete(AppleRegistration).where(AppleRegistration.push_token == token)
        if invalid_since_ms:
            since = dt.datetime.fromtimestamp(invalid_since_ms / 1000, dt.UTC)
            stmt = stmt.where(AppleRegistration.updated_at <= since)
        return int(session.execute(stmt).rowcount or 0)  # type: ignore[attr-defined]


@handles("apple.push")
def push(msg: Delivery) -> None:
    """Payload {"token", "pass_type_id"}, or {"tokens": [...], "pass_type_id"} for a batch
    (sent concurrently on one connection: fan-out of campaigns)."""
    pass_type_id = str(msg.payload["pass_type_id"])
    tokens = [str(t) for t in msg.payload.get("tokens") or [msg.payload["token"]]]
    with db.transaction() as session:
        # Waits for a listener holding a marker; after this, further changes queue anew.
        session.execute(delete(ApplePushPending).where(ApplePushPending.push_token.in_(tokens)))
        route = credentials.push_route(session, pass_type_id)
    if route is None:
        raise Permanent(f"no certificate for pass type {pass_type_id}")
    if route.pusher is None:
        log.info("apple push to %s device(s) skipped: %s", len(tokens), route.reason)
        return
    if len(tokens) == 1:
        results = [route.pusher.push(tokens[0], route.topic)]
    else:
        results = route.pusher.push_many([(t, route.topic) for t in tokens])
    again = [r for r in results if not r.ok and not r.gone and (r.retryable or r.status == 403)]
    for r in results:
        if r.gone:
            dropped = forget_token(r.token, r.timestamp_ms if r.status == 410 else None)
            log.info(
                "apple push token %s… is gone (%s %s): %s registration(s) dropped",
                r.token[:8],
                r.status,
                r.reason,
                dropped,
            )
        elif not r.ok and r not in again:
            log.warning("apple push to %s… refused: %s %s", r.token[:8], r.status, r.reason)
    if not again:
        if len(results) == 1 and not results[0].ok and not results[0].gone:
            raise Permanent(f"APNs {results[0].status} {results[0].reason}")
        return
    first = again[0]
    # 403: a key or certificate problem; retried (someone may fix it) and visible as failing.
    after = 300.0 if first.status == 403 else None
    if len(again) == len(results):
        raise Retry(f"APNs {first.status} {first.reason or ''}".strip(), after=after)
    # Part of a batch failed: only those are tried again, in a row of their own.
    with db.transaction() as session:
        enqueue(
            session,
            msg.merchant_id,
            "apple.push",
            {"tokens": [r.token for r in again], "pass_type_id": pass_type_id},
            delay=dt.timedelta(seconds=after or 30),
        )


def register() -> None:
    """Hook into card.changed (called by outbox.handlers.load_all)."""
    from loyalwallet.outbox.core_handlers import CARD_CHANGED_LISTENERS

    if wake_devices not in CARD_CHANGED_LISTENERS:
        CARD_CHANGED_LISTENERS.append(wake_devices)


register()
