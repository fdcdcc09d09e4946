"""Addresses not to be used again: a hard-bounced e-mail address (a 5.x.x refusal at send
time or a late DSN) and a phone number SMS.ru reports it has no route to. Campaigns skip
them; a card send by e-mail to a bounced address is refused (409 email_bounced).

Only a keyed hash of the address is stored (HMAC with a server-derived key, the same as
the late-bounce records of messaging.bounces use, so a DSN's record can be suppressed
without ever seeing the address again). A guest's marks go when their e-mail changes
(customers.service.get_or_create) and when they are erased (customers.service.erase)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loyalwallet import db
from loyalwallet.enrollment.limits import derived_key
from loyalwallet.messaging.models import MessageDelivery, MessageSuppression


def key(channel: str, address: str) -> str:
    """The keyed hash of an e-mail address (case-folded) or an E.164 phone."""
    if channel == "email":  # the key of messaging.bounces' records too
        mac = hmac.new(derived_key("email-bounce"), address.strip().lower().encode(), hashlib.sha256)
    else:
        mac = hmac.new(derived_key("sms-suppression"), address.strip().encode(), hashlib.sha256)
    return mac.hexdigest()


def add(
    session: Session,
    merchant_id: int,
    channel: str,
    address_hash: str,
    *,
    customer_id: int | None,
    code: str | None,
    now: dt.datetime | None = None,
) -> None:
    """Mark the address (once per merchant and channel; a second mark changes nothing)."""
    found = session.scalar(
        select(MessageSuppression.id).where(
            MessageSuppression.merchant_id == merchant_id,
            MessageSuppression.channel == channel,
            MessageSuppression.address_hash == address_hash,
        )
    )
    if found is not None:
        return
    try:
        with session.begin_nested():  # a racing worker's insert wins; ours is then a no-op
            session.add(
                MessageSuppression(
                    merchant_id=merchant_id,
                    channel=channel,
                    address_hash=address_hash,
                    customer_id=customer_id,
                    code=(code or "")[:32] or None,
                    created_at=now or db.utcnow(),
                )
            )
    except IntegrityError:
        pass


def suppressed(session: Session, merchant_id: int, channel: str, hashes: list[str]) -> set[str]:
    """Which of these hashes are marked."""
    if not hashes:
        return set()
    return set(
        session.scalars(
            select(MessageSuppression.address_hash).where(
                MessageSuppression.merchant_id == merchant_id,
                MessageSuppression.channel == channel,
                MessageSuppression.address_hash.in_(sorted(set(hashes))),
            )
        )
    )


def mark_of(
    session: Session, merchant_id: int, channel: str, address: str | None
) -> MessageSuppression | None:
    if not address:
        return None
    return session.scalar(
        select(MessageSuppression).where(
            MessageSuppression.merchant_id == merchant_id,
            MessageSuppression.channel == channel,
            MessageSuppression.address_hash == key(channel, address),
        )
    )


def clear(session: Session, merchant_id: int, channel: str, address: str | None, customer_id: int) -> None:
    """The guest's address changed: their marks on this channel go, with the old address's."""
    where = [MessageSuppression.customer_id == customer_id]
    if address:
        where.append(MessageSuppression.address_hash == key(channel, address))
    for condition in where:
        session.execute(
            delete(MessageSuppression).where(
                MessageSuppression.merchant_id == merchant_id,
                MessageSuppression.channel == channel,
                condition,
            )
        )


def forget(
    session: Session, merchant_id: int, customer_id: int, email: str | None, phone: str | None
) -> None:
    """Erasure: nothing keyed by the guest's addresses stays (marks and bounce records)."""
    session.execute(delete(MessageSuppression).where(MessageSuppression.customer_id == customer_id))
    for channel, address in (("email", email), ("sms", phone)):
        if not address:
            continue
        digest = key(channel, address)
        session.execute(
            delete(MessageSuppression).where(
                MessageSuppression.merchant_id == merchant_id,
                MessageSuppression.channel == channel,
                MessageSuppression.address_hash == digest,
            )
        )
        session.execute(
            update(MessageDelivery)
            .where(MessageDelivery.merchant_id == merchant_id, MessageDelivery.address_hash == digest)
            .values(address_hash=None)
        )
