"""The "Add to Google Wallet" link of a card.

A card's save link is signed once, at the first write transaction that shows the card
with Google configured (enrolment, a purchase), and cached in google_objects and in
memory; card_view never signs again and never signs inside a read transaction. Making
the link also queues `google.patch`: the object is inserted at Google right away and
patched on every later change of the card (handlers.py), because without Google's save
callbacks we cannot know whether the guest saved it.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from loyalwallet import db
from loyalwallet.cards.models import Card
from loyalwallet.config import get_settings
from loyalwallet.outbox.service import enqueue
from loyalwallet.programs.models import Program
from loyalwallet.wallet.google import caches, savelink
from loyalwallet.wallet.google.issuer import Issuer, build_object, issuer_for, object_id_for
from loyalwallet.wallet.google.models import GoogleObject

log = logging.getLogger("loyalwallet.google")


# --- the save link -----------------------------------------------------------------------


def _insert_ignoring_conflict(session: Session, model: Any, values: dict[str, Any], key: list[str]) -> None:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(model).values(**values).on_conflict_do_nothing(index_elements=key))


_LINK = select(
    GoogleObject.object_id, GoogleObject.save_jwt, GoogleObject.jwt_key_id, GoogleObject.inserted
).where(GoogleObject.card_id == bindparam("card_id"))


def _remember(card_id: int, oid: str, key_id: str, token: str) -> None:
    with caches.lock:
        caches.links[card_id] = (oid, key_id, token)


def save_link(session: Session, card: Card, program: Program, issuer: Issuer, *, create: bool) -> str | None:
    """The card's https://pay.google.com/gp/v/save/<JWT> link: the cached one, or (when
    `create` and the session may write) a newly signed one. None when there is none yet."""
    # The hot path (every POS answer shows the card): a signed link stays valid for as
    # long as the object id and the key are the same, so it is remembered in memory too.
    oid = object_id_for(issuer, card)
    with caches.lock:
        known = caches.links.get(card.id)
    if known is not None and known[0] == oid and known[1] == issuer.key_id:
        return savelink.save_base() + known[2]
    row = session.execute(_LINK, {"card_id": card.id}).first()
    if row is not None and row.object_id == oid and row.save_jwt and row.jwt_key_id == issuer.key_id:
        _remember(card.id, oid, issuer.key_id, row.save_jwt)
        return savelink.save_base() + row.save_jwt
    if not create:
        return None
    # No personal data in links (they travel by SMS, mail, browser history): the holder's
    # name reaches Google over REST only, with the insert queued below.
    obj = {k: v for k, v in build_object(session, issuer, card, program).items() if k != "accountName"}
    token: str | None = sign_link(issuer, [obj])
    kind: str | None = "full"
    # (A development key cannot insert anything: it keeps the long link.)
    if len(token or "") > savelink.max_jwt_length() and issuer.syncs:
        # Too long for a URL: the object goes to Google over REST first, then the link
        # carries only its id (made by sync_card once the insert succeeded).
        inserted = row is not None and row.inserted and row.object_id == oid
        token = sign_link(issuer, [savelink.reference(obj)]) if inserted else None
        kind = "ref" if inserted else None
    now = db.utcnow()
    if row is None:
        _insert_ignoring_conflict(
            session,
            GoogleObject,
            {
                "card_id": card.id,
                "merchant_id": card.merchant_id,
                "object_id": oid,
                "save_jwt": token,
                "jwt_key_id": issuer.key_id if token else None,
                "jwt_kind": kind,
                "inserted": False,
                "synced_version": 0,
                "messages": [],
                "notified_at": [],
                "created_at": now,
                "updated_at": now,
            },
            ["card_id"],
        )
    else:
        values: dict[str, Any] = {
            "save_jwt": token,
            "jwt_key_id": issuer.key_id,
            "jwt_kind": kind,
            "updated_at": now,
        }
        if row.object_id != oid:  # another issuer: a new object at Google (nobody saved it yet)
            values.update(
                object_id=oid,
                inserted=False,
                class_id=None,
                synced_hash=None,
                messages=[],
                notified_at=[],
                has_users=False,
                saved_at=None,
                checked_at=None,
            )
        session.execute(update(GoogleObject).where(GoogleObject.card_id == card.id).values(**values))
    if issuer.syncs:
        enqueue(session, card.merchant_id, "google.patch", {"card_id": card.id, "reason": "link"})
    if token is None:
        return None
    _remember(card.id, oid, issuer.key_id, token)  # valid even if this transaction rolls back
    return savelink.save_base() + token


def sign_link(issuer: Issuer, objs: list[dict[str, Any]]) -> str:
    return savelink.sign(
        email=issuer.creds.email,
        key_id=issuer.key_id,
        private_key=issuer.creds.private_key,
        base_url=get_settings().base_url,
        objects=objs,
    )


def card_view_hook(session: Session, card: Card, program: Program, urls: dict[str, str]) -> None:
    """A card-view hook (wiring.CARD_URL_HOOKS): put the signed save link in the card's view.

    A Google problem (a damaged stored key, a bug) must never fail the purchase that
    shows the card: the link is made in a savepoint, and on any error the card keeps
    its redirect link, which retries later."""
    try:
        issuer = issuer_for(session, card.merchant_id)
        if issuer is None:
            return
        link = save_link(session, card, program, issuer, create=False)
        if link is None and session.info.get("writable"):
            with session.begin_nested():
                link = save_link(session, card, program, issuer, create=True)
    except Exception:
        log.exception("no Google save link for card %s; it shows the redirect link", card.id)
        return
    if link:
        urls["google_save_url"] = link
