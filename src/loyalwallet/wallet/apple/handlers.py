"""Outbox side of Apple Wallet: a changed card wakes the devices that hold its pass.

card.changed (queued by CardBook.touch, and per chunk of 100 cards by program.changed and
by a campaign) → `wake_devices`: stamps the passes' registrations with a
commit-ordered change number (updates.py) and queues a push per device token, unless one
is already queued and not yet started (a burst of changes collapses into one push per
device: one push makes the device fetch every changed pass of ours). The tokens of one
card.changed row go in one `apple.push` row per pass type: a campaign chunk of 100 cards
is one row pushed multiplexed (push_many), not 100 →
`push`: HTTP/2 requests to APNs through the process's long-lived client.

The queued-push marker (apple_push_pending) is row-locked by the listener until it
commits, and the push handler deletes it before pushing: so a push never leaves before
the change it announces is visible to the device's next question.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from loyalwallet import db
from loyalwallet.cards.handlers import changed_cards
from loyalwallet.cards.models import Coupon
from loyalwallet.outbox.handlers import Delivery, Permanent, Retry
from loyalwallet.outbox.service import enqueue
from loyalwallet.wallet.apple import apns, credentials, updates
from loyalwallet.wallet.apple.gifts import gift_serial
from loyalwallet.wallet.apple.models import ApplePushPending, AppleRegistration

log = logging.getLogger("loyalwallet.apple")

# A marker older than this is taken as lost (its push row died without running).
PENDING_STALE = dt.timedelta(minutes=10)
# Tokens per batched apple.push row: one multiplexed push_many, well within the lease.
# 100, as a campaign chunk had before message-only chunks grew to 1000 cards: 500 tokens
# took longer than the 60 s lease against a slow APNs (10 pushes/s on a loaded machine),
# and the row was taken again by another worker and pushed again (bench/fanout.py).
TOKENS_PER_ROW = 100


def _insert(session: Session) -> sqlite.Insert | postgresql.Insert:
    if db.is_sqlite():
        return sqlite.insert(ApplePushPending)
    return postgresql.insert(ApplePushPending)


def queue_push(session: Session, merchant_id: int | None, token: str, pass_type_id: str) -> bool:
    """Queue a push to `token` unless one is queued and not started. True: queued."""
    return bool(queue_pushes(session, merchant_id, [(token, pass_type_id)]))


def queue_pushes(
    session: Session,
    merchant_id: int | None,
    targets: list[tuple[str, str]],
    place: dt.datetime | None = None,
) -> list[str]:
    """Queue pushes to these (token, pass type) pairs, skipping tokens whose push is
    queued and not started; returns the tokens queued. One `apple.push` row per pass
    type (with `tokens` when there are several, pushed multiplexed): a campaign chunk's
    devices go in one row. A few statements whatever the number of tokens.
    `place`: see outbox.service.enqueue."""
    now = db.utcnow()
    pass_types = dict(sorted(set(targets)))  # token -> pass type (a token is one pass type's)
    tokens = sorted(pass_types)
    if not tokens:
        return []
    # Sorted, so two listeners with overlapping tokens take the markers in one order.
    # executemany (one compiled statement, sent in pages), not a VALUES list compiled anew
    # for every chunk: that compile cost more than the insert.
    inserted = set(
        session.scalars(
            _insert(session).on_conflict_do_nothing().returning(ApplePushPending.push_token),
            [{"push_token": t, "pass_type_id": pass_types[t], "queued_at": now} for t in tokens],
        )
    )
    queued = [t for t in tokens if t in inserted]
    taken = [t for t in tokens if t not in inserted]
    if taken:
        # Lock the markers: their pushes cannot start (they delete the marker first)
        # before this transaction, and the change it stamped, are committed.
        found = dict(
            session.execute(
                db.for_update(
                    select(ApplePushPending.push_token, ApplePushPending.queued_at)
                    .where(ApplePushPending.push_token.in_(taken))
                    .order_by(ApplePushPending.push_token)
                )
            ).all()
        )
        stale = [t for t in taken if t in found and found[t] <= now - PENDING_STALE]
        gone = [t for t in taken if t not in found]  # its push started meanwhile: queue anew
        if stale:  # a marker older than PENDING_STALE is taken as lost: queue anew
            session.execute(
                update(ApplePushPending).where(ApplePushPending.push_token.in_(stale)).values(queued_at=now)
            )
        if gone:
            session.execute(
                _insert(session).on_conflict_do_nothing(),
                [{"push_token": t, "pass_type_id": pass_types[t], "queued_at": now} for t in gone],
            )
        queued = sorted([*queued, *stale, *gone])
    by_type: dict[str, list[str]] = {}
    for t in queued:
        by_type.setdefault(pass_types[t], []).append(t)
    for pass_type_id, group in sorted(by_type.items()):
        for i in range(0, len(group), TOKENS_PER_ROW):
            part = group[i : i + TOKENS_PER_ROW]
            payload: dict[str, Any] = (
                {"token": part[0], "pass_type_id": pass_type_id}
                if len(part) == 1
                else {"tokens": part, "pass_type_id": pass_type_id}
            )
            enqueue(session, merchant_id, "apple.push", payload, place=place)
    return queued


def wake_devices(msg: Delivery) -> None:
    """card.changed listener: mark the cards' passes (and their coupons' passes) changed
    for their devices and queue the pushes (one row per pass type for a bulk row)."""
    card_ids = changed_cards(msg)
    coupon_ids = select(Coupon.id).where(Coupon.card_id.in_(card_ids)).scalar_subquery()
    mine = or_(AppleRegistration.card_id.in_(card_ids), AppleRegistration.coupon_id.in_(coupon_ids))
    with db.transaction() as session:
        targets = session.execute(
            select(AppleRegistration.push_token, AppleRegistration.pass_type_id).where(mine).distinct()
        ).all()
        if not targets:
            return
        seq = updates.stamp(session)
        session.execute(update(AppleRegistration).where(mine).values(change_seq=seq))
        # In the queue as of the change: not behind what was queued since (a campaign's
        # Google messages), so iPhones and Android phones get the message together.
        queue_pushes(session, msg.merchant_id, [(t, p) for t, p in targets], place=msg.created_at)


# The business events that change what a gift certificate's pass shows (its balance,
# its state); each carries the certificate's id.
GIFT_EVENTS = ("certificate.spent", "certificate.refunded", "certificate.expired", "certificate.voided")


def wake_gift_devices(msg: Delivery) -> None:
    """EVENT_LISTENERS entry: a gift certificate's balance or state changed — mark its
    pass changed for the devices holding it and queue their pushes (as wake_devices does
    for a card)."""
    data = msg.payload.get("data") or {}
    if msg.payload.get("name") not in GIFT_EVENTS or not isinstance(data.get("id"), int):
        return
    mine = AppleRegistration.serial == gift_serial(data["id"])
    with db.transaction() as session:
        targets = session.execute(
            select(AppleRegistration.push_token, AppleRegistration.pass_type_id).where(mine).distinct()
        ).all()
        if not targets:
            return
        seq = updates.stamp(session)
        session.execute(update(AppleRegistration).where(mine).values(change_seq=seq))
        queue_pushes(session, msg.merchant_id, [(t, p) for t, p in targets], place=msg.created_at)


def forget_token(token: str, invalid_since_ms: int | None = None) -> int:
    """APNs says the token is dead: drop its registrations (those not renewed since)."""
    with db.transaction() as session:
        stmt = delete(AppleRegistration).where(AppleRegistration.push_token == token)
        if invalid_since_ms:
            since = dt.datetime.fromtimestamp(invalid_since_ms / 1000, dt.UTC)
            stmt = stmt.where(AppleRegistration.updated_at <= since)
        return int(session.execute(stmt).rowcount or 0)  # type: ignore[attr-defined]  # a CursorResult at run time, typed as Result


def push(msg: Delivery) -> None:
    """Payload {"token", "pass_type_id"}, or {"tokens": [...], "pass_type_id"} for a batch
    (sent concurrently on one connection: fan-out of campaigns)."""
    pass_type_id = str(msg.payload["pass_type_id"])
    tokens = [str(t) for t in msg.payload.get("tokens") or [msg.payload["token"]]]
    with db.transaction() as session:
        # Waits for a listener holding a marker; after this, further changes queue anew.
        # A batch takes the markers in token order, as the listeners do (no deadlock).
        if len(tokens) > 1 and not db.is_sqlite():
            session.execute(
                select(ApplePushPending.push_token)
                .where(ApplePushPending.push_token.in_(tokens))
                .order_by(ApplePushPending.push_token)
                .with_for_update()
            )
        session.execute(delete(ApplePushPending).where(ApplePushPending.push_token.in_(tokens)))
        route = credentials.push_route(session, pass_type_id)
    if route is None:
        raise Permanent(f"no certificate for pass type {pass_type_id}")
    if route.pusher is None:
        log.info("apple push to %s device(s) skipped: %s", len(tokens), route.reason)
        return
    try:
        if len(tokens) == 1:
            results = [route.pusher.push(tokens[0], route.topic)]
        else:
            results = route.pusher.push_many([(t, route.topic) for t in tokens])
    finally:
        apns.release(route.pusher)  # the process keeps a bounded set of connections
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
