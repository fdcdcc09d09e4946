"""Syncing with Google: classes and objects upserted (classes before the objects that use
them, and only when their body changed), campaign messages added to objects, and
whether a guest saved an object (`hasUsers`, recorded from every insert, patch and
addMessage answer: saved_values; objects that do not change are asked about now and
then by saves.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loyalwallet import db
from loyalwallet.cards.models import Card, Coupon
from loyalwallet.customers.models import Customer
from loyalwallet.db import UTCDateTime
from loyalwallet.errors import DomainError
from loyalwallet.merchants.models import Merchant
from loyalwallet.merchants.service import get_merchant
from loyalwallet.programs import assets
from loyalwallet.programs.design import parse_design
from loyalwallet.programs.models import Asset, Program
from loyalwallet.wallet.google import caches, objects, savelink
from loyalwallet.wallet.google.client import GoogleApiError, WalletClient
from loyalwallet.wallet.google.images import default_logo
from loyalwallet.wallet.google.issuer import (
    Issuer,
    build_object,
    class_id_for,
    config_ttl,
    image_url,
    issuer_for,
    merchant_gettext,
    object_id_for,
    program_facts,
)
from loyalwallet.wallet.google.links import sign_link
from loyalwallet.wallet.google.models import GoogleClass, GoogleObject

log = logging.getLogger("loyalwallet.google")


# Google: at most 3 notifying messages per pass in 24 hours; more go as plain TEXT.
NOTIFY_PER_DAY = 3
# Google keeps at most 10 messages on an object; the oldest of ours make room.
MAX_MESSAGES = 10


# --- syncing with Google -----------------------------------------------------------------


# What a sync reads, in one round trip: the object with its card, and for a full sync
# also the program, merchant, guest and the card's reward count (session.get of each is
# then served from the identity map, and available_rewards skips its query at 0).
_REWARDS = (
    select(func.count())
    .where(Coupon.card_id == Card.id, Coupon.status == "available")
    .correlate(Card)
    .scalar_subquery()
)
_OBJECT = select(GoogleObject, Card).join(Card, Card.id == GoogleObject.card_id)
_OBJECT_FULL = (
    select(GoogleObject, Card, Program, Merchant, Customer, _REWARDS)
    .join(Card, Card.id == GoogleObject.card_id)
    .join(Program, Program.id == Card.program_id)
    .join(Merchant, Merchant.id == Card.merchant_id)
    .outerjoin(Customer, Customer.id == Card.customer_id)
)


def _load(session: Session, card_id: int, *, full: bool, lock: bool) -> GoogleObject | None:
    stmt = (_OBJECT_FULL if full else _OBJECT).where(GoogleObject.card_id == card_id)
    if lock:
        stmt = stmt.with_for_update(of=GoogleObject, skip_locked=True)
    row = session.execute(stmt).first()
    if row is None:
        return None
    if full:
        session.info.setdefault("rewards_hint", {})[card_id] = row[5]
    return row[0]


@contextmanager
def _object_session(card_id: int, *, full: bool = False) -> Iterator[tuple[Session, bool]]:
    """The session a sync reads (and on PostgreSQL also writes) in; yields (session, locked).
    The object and its card (`full`: and the rest build_object needs) are loaded.

    PostgreSQL: one transaction holding the google_objects row lock across the calls to
    Google, so two workers never send one card's versions out of order; a row locked by
    another worker is retried shortly. SQLite: a read transaction (there is one writer
    at a time anyway, and a write transaction would block every writer during a call)."""
    if db.is_sqlite():
        with db.read() as session:
            _load(session, card_id, full=full, lock=False)
            yield session, False
        return
    with db.transaction() as session:
        got = _load(session, card_id, full=full, lock=True)
        if got is None and session.get(GoogleObject, card_id) is not None:
            from loyalwallet.outbox.handlers import Retry

            raise Retry("another worker is syncing this card", after=2.0)
        yield session, True


@contextmanager
def _writer(session: Session, locked: bool) -> Iterator[Session]:
    if locked:
        yield session
    else:
        with db.transaction() as write:
            yield write


@lru_cache(maxsize=256)
def _default_logo(text: str, background: str, foreground: str) -> tuple[bytes, str]:
    png = default_logo(text, background, foreground)
    return png, hashlib.sha256(png).hexdigest()


def _logo_url(session: Session, program: Program, pf: objects.ProgramFacts) -> str:
    if pf.design.images.logo:
        return assets.url(program.merchant_id, pf.design.images.logo)
    png, sha = _default_logo(
        pf.design.logo_text or pf.name, pf.design.colours.background, pf.design.colours.foreground
    )
    # Assets are content-addressed and never deleted: once seen, no need to look again.
    if (program.merchant_id, sha) in caches.assets_seen:
        return assets.url(program.merchant_id, sha)
    exists = session.scalar(
        select(Asset.id).where(Asset.merchant_id == program.merchant_id, Asset.sha256 == sha)
    )
    if exists is None:
        try:
            with db.transaction() as write:
                assets.store(write, program.merchant_id, png)
        except IntegrityError:  # stored by another worker meanwhile
            pass
    else:
        with caches.lock:
            if len(caches.assets_seen) >= 10_000:
                caches.assets_seen.clear()
            caches.assets_seen.add((program.merchant_id, sha))
    return assets.url(program.merchant_id, sha)


def _class_bodies(
    session: Session, issuer: Issuer, program: Program, only: str | None = None
) -> list[tuple[str, str, dict[str, Any]]]:
    """(class id, variant, body) of the program's classes (or of one variant)."""
    merchant = get_merchant(session, program.merchant_id)
    pf = program_facts(session, program, merchant)
    logo = _logo_url(session, program, pf)
    out = []
    for variant, tier in objects.variants(pf.design, pf.rules).items():
        if only is not None and variant != only:
            continue
        cid = class_id_for(issuer, program, variant)
        body = objects.loyalty_class(
            cid, pf, tier, logo, image_url(program.merchant_id), merchant_gettext(merchant)
        )
        out.append((cid, variant, body))
    return out


def _push_classes(
    session: Session, client: WalletClient, program: Program, bodies: list[tuple[str, str, dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Upsert classes whose body changed; returns the rows to record."""
    done = []
    now = time.monotonic()
    for cid, variant, body in bodies:
        digest = objects.content_hash(body)
        seen = caches.classes_seen.get(cid)
        if seen is not None and seen[0] == digest and seen[1] > now:
            continue  # this body is at Google: recorded so, a moment ago (see caches.classes_seen)
        row = session.get(GoogleClass, cid)
        if row is not None and row.inserted and row.synced_hash == digest:
            _class_seen(cid, digest)
            continue
        client.upsert(
            "loyaltyClass",
            body,
            objects.patch_body(body, objects.CLASS_OPTIONAL),
            exists=row is not None and row.inserted,
        )
        _class_seen(cid, digest)
        done.append(
            {
                "class_id": cid,
                "merchant_id": program.merchant_id,
                "program_id": program.id,
                "variant": variant,
                "inserted": True,
                "synced_hash": digest,
                "updated_at": db.utcnow(),
            }
        )
    return done


def _class_seen(class_id: str, digest: str) -> None:
    with caches.lock:
        if len(caches.classes_seen) >= 10_000:
            caches.classes_seen.clear()
        caches.classes_seen[class_id] = (digest, time.monotonic() + config_ttl())


def _record_classes(session: Session, rows: list[dict[str, Any]]) -> None:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for values in rows:
        stmt = insert(GoogleClass).values(**values)
        changes = {k: values[k] for k in ("inserted", "synced_hash", "updated_at")}
        session.execute(stmt.on_conflict_do_update(index_elements=["class_id"], set_=changes))


def sync_program(program_id: int) -> int:
    """Upsert every class of a program. Returns how many were sent."""
    with db.read() as session:
        program = session.get(Program, program_id)
        if program is None:
            return 0
        issuer = issuer_for(session, program.merchant_id)
        if issuer is None or not issuer.syncs:
            return 0
        bodies = _class_bodies(session, issuer, program)
        rows = _push_classes(session, WalletClient(issuer.creds), program, bodies)
    with db.transaction() as session:
        _record_classes(session, rows)
    return len(rows)


def sync_card(card_id: int) -> str:
    """Bring the card's object (and its class) at Google up to date. Returns what was
    done: "skipped" (nothing to do or Google not set up), "unchanged", "insert", "patch"."""
    with _object_session(card_id, full=True) as (session, locked):
        row = session.get(GoogleObject, card_id)
        card = session.get(Card, card_id)
        if row is None or card is None:
            return "skipped"
        program = session.get(Program, card.program_id)
        assert program is not None
        issuer = issuer_for(session, card.merchant_id)
        if issuer is None or not issuer.syncs:
            return "skipped"
        client = WalletClient(issuer.creds)
        merchant = get_merchant(session, card.merchant_id)
        obj = build_object(session, issuer, card, program, merchant)
        variant = objects.variant_for(parse_design(program.design), card.tier)
        class_rows = _push_classes(session, client, program, _class_bodies(session, issuer, program, variant))
        digest = objects.content_hash(obj)
        same_object = row.object_id == obj["id"]
        answer: dict[str, Any] | None = None
        if same_object and row.inserted and row.synced_hash == digest:
            verb = "unchanged"
        else:
            exists = same_object and row.inserted
            try:
                verb, answer = client.upsert(
                    "loyaltyObject", obj, objects.patch_body(obj, objects.OBJECT_OPTIONAL), exists=exists
                )
            except GoogleApiError as exc:
                moving = exists and row.class_id is not None and row.class_id != obj["classId"]
                if exc.status != 400 or not moving:
                    raise
                # Google would not move the object to its tier's class: keep it in its
                # class and still bring everything else up to date.
                log.warning("Google refused to move %s to %s: %s", obj["id"], obj["classId"], exc.message)
                obj = {**obj, "classId": row.class_id}
                verb, answer = client.upsert(
                    "loyaltyObject", obj, objects.patch_body(obj, objects.OBJECT_OPTIONAL), exists=True
                )
        now = db.utcnow()
        values: dict[str, Any] = {
            "object_id": obj["id"],
            "inserted": True,
            "class_id": obj["classId"],
            "synced_hash": digest,
            "synced_version": card.version,
            "synced_at": now,
            "updated_at": now,
            **saved_values(answer, now),
        }
        if not row.save_jwt or row.jwt_key_id != issuer.key_id or not same_object:
            # The link was waiting for this insert (its JWT carries only the id).
            values.update(
                save_jwt=sign_link(issuer, [savelink.reference(obj)]),
                jwt_key_id=issuer.key_id,
                jwt_kind="ref",
            )
        if not same_object:  # a new object: the old one's messages and save stay with it
            values.update(messages=[], notified_at=[], saved_at=now if values.get("has_users") else None)
        with _writer(session, locked) as write:
            _record_classes(write, class_rows)
            write.execute(update(GoogleObject).where(GoogleObject.card_id == card_id).values(**values))
    return verb


def send_message(card_id: int, merchant_id: int | None, header: str, body: str, message_id: str) -> str:
    """addMessage on the card's object (the campaign push contract). Returns "sent",
    "sent_text" (over the notification limit: shown without a notification), "duplicate"
    (already added), or "skipped" (the card has no Google link, or Google is not set up).

    One transaction (PostgreSQL; SQLite: a read and a write) for the usual case: the
    checks are made under the object's lock, not in a read of their own first."""
    synced = False
    while True:
        with _object_session(card_id) as (session, locked):
            card = session.get(Card, card_id)
            if card is None or (merchant_id is not None and card.merchant_id != merchant_id):
                raise DomainError("not_found", "card not found")
            row = session.get(GoogleObject, card_id)
            if row is None:
                return "skipped"
            issuer = issuer_for(session, card.merchant_id)
            if issuer is None or not issuer.syncs:
                return "skipped"
            if synced or (row.inserted and row.object_id == object_id_for(issuer, card)):
                return _send_message(session, locked, issuer, card, row, header, body, message_id)
        # Not at Google yet (or under another issuer's id): insert it first, outside the lock.
        sync_card(card_id)
        synced = True


def _send_message(
    session: Session,
    locked: bool,
    issuer: Issuer,
    card: Card,
    row: GoogleObject,
    header: str,
    body: str,
    message_id: str,
) -> str:
    card_id = card.id
    if any(m.get("id") == message_id for m in row.messages or []):
        return "duplicate"
    client = WalletClient(issuer.creds)
    now = db.utcnow()
    if locked:  # PostgreSQL: the object's row lock is held until the end of the send
        notify = len(_recent(row.notified_at, now)) < NOTIFY_PER_DAY
    else:  # SQLite: the count is read and the slot taken in one write transaction
        notify = _reserve_notification(card_id, now)
    try:
        return _deliver_message(
            session, locked, issuer, client, card, row, header, body, message_id, now, notify
        )
    except BaseException:
        if notify and not locked:
            _release_notification(card_id, now)
        raise


def _recent(notified_at: list[Any] | None, now: dt.datetime) -> list[str]:
    since = now - dt.timedelta(hours=24)
    return [t for t in (notified_at or []) if dt.datetime.fromisoformat(t) > since]


def _reserve_notification(card_id: int, now: dt.datetime) -> bool:
    """SQLite: take one of the 3 daily notifications of this card, or say there is none left.
    A write transaction (BEGIN IMMEDIATE: one writer at a time), so two sends at once
    cannot both see 2 and both notify; short, never across a call to Google."""
    with db.transaction() as write:
        notified = write.scalar(select(GoogleObject.notified_at).where(GoogleObject.card_id == card_id))
        recent = _recent(notified, now)
        if len(recent) >= NOTIFY_PER_DAY:
            return False
        write.execute(
            update(GoogleObject)
            .where(GoogleObject.card_id == card_id)
            .values(notified_at=[*recent, now.isoformat()])
        )
    return True


def _release_notification(card_id: int, now: dt.datetime) -> None:
    """Give back a slot taken by _reserve_notification: the message went silently or not at all."""
    with db.transaction() as write:
        notified = write.scalar(select(GoogleObject.notified_at).where(GoogleObject.card_id == card_id))
        kept = list(notified or [])
        if now.isoformat() in kept:
            kept.remove(now.isoformat())
            write.execute(
                update(GoogleObject).where(GoogleObject.card_id == card_id).values(notified_at=kept)
            )


def _deliver_message(
    session: Session,
    locked: bool,
    issuer: Issuer,
    client: WalletClient,
    card: Card,
    row: GoogleObject,
    header: str,
    body: str,
    message_id: str,
    now: dt.datetime,
    notify: bool,
) -> str:
    card_id = card.id
    reserved = notify and not locked
    recent = _recent(row.notified_at, now) if locked else []
    message = {
        "id": message_id,
        "header": header,
        "body": body,
        "messageType": "TEXT_AND_NOTIFY" if notify else "TEXT",
    }
    kept = list(row.messages or [])
    answer: dict[str, Any] | None = None
    if len(kept) >= MAX_MESSAGES:
        kept = kept[-(MAX_MESSAGES - 1) :]
        answer = client.patch("loyaltyObject", row.object_id, {"messages": kept})
    oid = row.object_id

    def reinsert() -> None:  # deleted at Google meanwhile: insert it (with our messages) again
        program = session.get(Program, card.program_id)
        assert program is not None
        obj = {**build_object(session, issuer, card, program), "messages": kept}
        client.upsert("loyaltyObject", obj, obj, exists=False)

    try:
        added = _add_message(client, oid, message, reinsert)
    except GoogleApiError as exc:
        if not (notify and exc.status == 429):
            raise
        # Google counts notifications too; over its limit the message still goes, silently.
        notify = False
        message["messageType"] = "TEXT"
        added = _add_message(client, oid, message, reinsert)
    if isinstance(added.get("resource"), dict):  # AddMessageResponse: the updated object
        answer = added["resource"]
    values: dict[str, Any] = {}
    if locked:
        values["notified_at"] = [*recent, now.isoformat()] if notify else recent
    with _writer(session, locked) as write:
        if reserved and not notify:  # Google's own count said no: give the slot back
            notified = list(
                write.scalar(select(GoogleObject.notified_at).where(GoogleObject.card_id == card_id)) or []
            )
            if now.isoformat() in notified:
                notified.remove(now.isoformat())
            values["notified_at"] = notified
        base = kept
        if not locked:  # SQLite: another send may have added its message since our read
            current = write.scalar(select(GoogleObject.messages).where(GoogleObject.card_id == card_id))
            dropped = {m.get("id") for m in row.messages or []} - {m.get("id") for m in kept}
            base = [m for m in current or [] if m.get("id") not in dropped]
        write.execute(
            update(GoogleObject)
            .where(GoogleObject.card_id == card_id)
            .values(
                messages=[*base, message][-MAX_MESSAGES:],
                updated_at=now,
                **values,
                **saved_values(answer, now),
            )
        )
    return "sent" if notify else "sent_text"


def _add_message(client: WalletClient, oid: str, message: dict[str, Any], reinsert: Any) -> dict[str, Any]:
    try:
        return client.add_message("loyaltyObject", oid, message)
    except GoogleApiError as exc:
        if exc.status != 404:
            raise
        reinsert()
        return client.add_message("loyaltyObject", oid, message)


# --- saves -------------------------------------------------------------------------------


def saved_values(answer: dict[str, Any] | None, now: dt.datetime) -> dict[str, Any]:
    """The google_objects columns an object Google answered with (insert, patch, get,
    addMessage) sets: its read-only `hasUsers` (a guest saved it; absent means false, as
    JSON answers may leave out default values) and when we learnt it; `saved_at` keeps
    the first time it was seen true. Nothing when there was no answer."""
    if not isinstance(answer, dict) or not answer.get("id"):
        return {}
    return save_columns(bool(answer.get("hasUsers")), now)


def save_columns(has_users: bool, now: dt.datetime) -> dict[str, Any]:
    if not has_users:
        return {"has_users": False, "checked_at": now}
    return {
        "has_users": True,
        "checked_at": now,
        "saved_at": func.coalesce(GoogleObject.saved_at, literal(now, UTCDateTime())),
    }
