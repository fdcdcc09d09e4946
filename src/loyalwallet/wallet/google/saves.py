"""Which Google objects guests saved (for the dashboard's "by wallet" and `google status`).

Google tells an issuer about saves in the object itself: its read-only `hasUsers`, in
the answer of every insert, patch and get. sync_card and send_message record it from
the answers they get anyway (saved_values), so a card that changes is known
saved at its next patch. For the rest (a guest saved the card and has not bought since)
`schedule` asks Google again, within bounds:

- only objects at Google that are not known saved, whose save link was made in the
  last LOYALWALLET_GOOGLE_SAVES_DAYS days (30): a link unused for a month rarely is;
- each at most every LOYALWALLET_GOOGLE_SAVES_RECHECK_HOURS hours (6), counted from
  Google's last answer about it (checked_at), whichever call it came with; the least
  recently checked first;
- at most LOYALWALLET_GOOGLE_SAVES_BUDGET objects per run (200)
  LOYALWALLET_GOOGLE_SAVES_EVERY seconds (120), once across all worker processes
  (outbox periodic_runs).

A run only picks the objects and marks them checked; the GETs go in `google.check`
outbox rows of BATCH objects each, made by the worker's threads with the outbox's
retries and backoff like every other Google call (handlers.py). An object Google no
longer has (404) is inserted again by a `google.patch`.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import httpx
from sqlalchemy import or_, select, update

from loyalwallet import db
from loyalwallet.config import env
from loyalwallet.outbox.service import enqueue
from loyalwallet.wallet.google.client import GoogleApiError, TokenError, WalletClient
from loyalwallet.wallet.google.issuer import issuer_for
from loyalwallet.wallet.google.models import GoogleObject
from loyalwallet.wallet.google.sync import save_columns

log = logging.getLogger("loyalwallet.google")

BATCH = 20  # objects per google.check row
CHECK_ATTEMPTS = 6  # a check that keeps failing gives up; the object is picked again later


def _number(name: str, default: float) -> float:
    try:
        return float(env(name, str(default)) or default)
    except ValueError:
        log.warning("LOYALWALLET_%s is not a number; using %s", name, default)
        return default


def window_days() -> float:
    return _number("GOOGLE_SAVES_DAYS", 30)


def recheck_hours() -> float:
    return _number("GOOGLE_SAVES_RECHECK_HOURS", 6)


def budget() -> int:
    return max(0, int(_number("GOOGLE_SAVES_BUDGET", 200)))


def interval() -> float:
    return _number("GOOGLE_SAVES_EVERY", 120)


def schedule(now: dt.datetime | None = None) -> int:
    """Pick the objects due for a check (see the module's docstring), mark them checked
    and queue their `google.check` rows. Returns how many objects were queued."""
    now = now or db.utcnow()
    limit = budget()
    if limit == 0:
        return 0
    since = now - dt.timedelta(days=window_days())
    stale = now - dt.timedelta(hours=recheck_hours())
    pick = (
        select(GoogleObject.card_id, GoogleObject.merchant_id)
        .where(
            GoogleObject.has_users.is_(False),
            GoogleObject.inserted.is_(True),
            GoogleObject.created_at >= since,
            or_(GoogleObject.checked_at.is_(None), GoogleObject.checked_at <= stale),
        )
        # Never checked (made before saves were recorded) first, then the oldest checks.
        .order_by(GoogleObject.checked_at.is_not(None), GoogleObject.checked_at, GoogleObject.card_id)
        .limit(limit)
    )
    queued = 0
    with db.transaction() as session:
        if not db.is_sqlite():
            # A row locked by a sync in progress is skipped: that sync's answer checks it.
            pick = pick.with_for_update(skip_locked=True)
        rows = session.execute(pick).all()
        if not rows:
            return 0
        by_merchant: dict[int, list[int]] = {}
        for card_id, merchant_id in rows:
            by_merchant.setdefault(merchant_id, []).append(card_id)
        session.execute(
            update(GoogleObject)
            .where(GoogleObject.card_id.in_([r.card_id for r in rows]))
            .values(checked_at=now)
            .execution_options(synchronize_session=False)
        )
        for merchant_id, card_ids in by_merchant.items():
            issuer = issuer_for(session, merchant_id)
            if issuer is None or not issuer.syncs:
                continue  # nobody to ask: marked checked, picked again after the interval
            for i in range(0, len(card_ids), BATCH):
                chunk = card_ids[i : i + BATCH]
                enqueue(
                    session,
                    merchant_id,
                    "google.check",
                    {"card_ids": chunk, "at": now.isoformat()},
                    max_attempts=CHECK_ATTEMPTS,
                )
                queued += len(chunk)
    return queued


def check(merchant_id: int | None, card_ids: list[int], at: dt.datetime) -> dict[str, int]:
    """GET the objects of a `google.check` row (picked at `at`) and record what Google
    says. Objects answered about since `at` (by a sync, or an earlier try of this row)
    and ones known saved are skipped. Returns counts by outcome.

    Outages, 429/5xx, timeouts and a refused key raise (the outbox retries or
    dead-letters the row, as for google.patch); what was learnt before is kept."""
    counts = {"saved": 0, "unsaved": 0, "missing": 0, "failed": 0, "skipped": 0}
    with db.read() as session:
        rows = session.execute(
            select(GoogleObject.card_id, GoogleObject.object_id)
            .where(
                GoogleObject.card_id.in_(card_ids),
                GoogleObject.merchant_id == merchant_id,
                GoogleObject.has_users.is_(False),
                GoogleObject.inserted.is_(True),
                or_(GoogleObject.checked_at.is_(None), GoogleObject.checked_at <= at),
            )
            .order_by(GoogleObject.card_id)
        ).all()
        issuer = issuer_for(session, merchant_id) if rows and merchant_id is not None else None
    counts["skipped"] = len(card_ids) - len(rows)
    if issuer is None or not issuer.syncs:
        counts["skipped"] = len(card_ids)
        return counts
    client = WalletClient(issuer.creds)
    answers: dict[int, dict[str, Any]] = {}  # card id -> the object Google answered with
    looked: list[int] = []  # answered without the object (an error kept for later)
    missing: list[int] = []
    try:
        for card_id, object_id in rows:
            if not object_id.startswith(issuer.issuer_id + "."):
                looked.append(card_id)  # another issuer's object: synced anew at its next change
                counts["skipped"] += 1
                continue
            try:
                answers[card_id] = client.get("loyaltyObject", object_id)
            except TokenError:
                raise
            except GoogleApiError as exc:
                if exc.status == 404:
                    missing.append(card_id)
                    counts["missing"] += 1
                elif exc.retryable or exc.status == 401:
                    raise
                else:  # e.g. 403: asking again at once would not help
                    log.warning("Google would not show %s: %s", object_id, exc)
                    looked.append(card_id)
                    counts["failed"] += 1
    except (GoogleApiError, httpx.HTTPError):
        _record(merchant_id, answers, looked, missing)
        raise
    _record(merchant_id, answers, looked, missing)
    for answer in answers.values():
        counts["saved" if answer.get("hasUsers") else "unsaved"] += 1
    return counts


def _record(
    merchant_id: int | None, answers: dict[int, dict[str, Any]], looked: list[int], missing: list[int]
) -> None:
    if not (answers or looked or missing):
        return
    now = db.utcnow()
    saved = [card_id for card_id, answer in answers.items() if answer.get("hasUsers")]
    seen = [card_id for card_id in answers if card_id not in saved] + looked
    with db.transaction() as session:
        # Only ever false -> true here: a sync's newer answer may have recorded a save
        # already (or, later, that it was removed), which this GET must not overwrite.
        if saved:
            session.execute(
                update(GoogleObject)
                .where(GoogleObject.card_id.in_(saved), GoogleObject.has_users.is_(False))
                .values(**save_columns(True, now))
                .execution_options(synchronize_session=False)
            )
        if seen:
            session.execute(
                update(GoogleObject)
                .where(GoogleObject.card_id.in_(seen), GoogleObject.has_users.is_(False))
                .values(checked_at=now)
                .execution_options(synchronize_session=False)
            )
        if missing:
            log.warning(
                "%s Google object(s) of merchant %s are gone at Google; inserting them again",
                len(missing),
                merchant_id,
            )
            session.execute(
                update(GoogleObject)
                .where(GoogleObject.card_id.in_(missing))
                .values(inserted=False, checked_at=now, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            for card_id in missing:
                enqueue(session, merchant_id, "google.patch", {"card_id": card_id, "reason": "missing"})
