"""Guests: find by phone through the blind index, create, read (decrypting), erase."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

# Registers the hook that keeps the (encrypted) names searchable: see search/service.py.
import loyalwallet.search.service  # noqa: F401
from loyalwallet import crypto
from loyalwallet.customers import erasure
from loyalwallet.customers.models import Consent, Customer
from loyalwallet.customers.phones import mask, to_e164
from loyalwallet.db import utcnow
from loyalwallet.errors import Explained


@dataclass(frozen=True)
class GuestData:
    phone: str  # E.164
    name: str | None = None
    email: str | None = None
    birthday: dt.date | None = None
    gender: str | None = None
    extra: dict[str, Any] | None = None
    locale: str | None = None


def phone_index(merchant_id: int, e164: str) -> str:
    return crypto.blind_index(e164, merchant_id=merchant_id)


def find_by_phone(session: Session, merchant_id: int, raw_phone: str, region: str = "RU") -> Customer | None:
    e164 = to_e164(raw_phone, region)
    return session.scalar(
        select(Customer).where(
            Customer.merchant_id == merchant_id,
            Customer.phone_index == phone_index(merchant_id, e164),
        )
    )


def _seal(merchant_id: int, column: str, value: str | None) -> bytes | None:
    return crypto.seal(value, merchant_id=merchant_id, column=column)


def get_or_create(
    session: Session, merchant_id: int, data: GuestData, *, now: dt.datetime | None = None
) -> tuple[Customer, bool]:
    """The guest with this phone, created if new (at `now`, default the present).
    Filled-in fields are added to an existing guest, never overwritten by blanks."""
    index = phone_index(merchant_id, data.phone)
    customer = session.scalar(
        select(Customer).where(Customer.merchant_id == merchant_id, Customer.phone_index == index)
    )
    created = customer is None
    if customer is None:
        customer = Customer(merchant_id=merchant_id, phone_index=index, created_at=now or utcnow())
        customer.phone_enc = _seal(merchant_id, "phone", data.phone)
        session.add(customer)
    if data.name:
        customer.name_enc = _seal(merchant_id, "name", data.name)
    if data.email:
        old = None if created else crypto.open_(customer.email_enc, merchant_id=merchant_id, column="email")
        customer.email_enc = _seal(merchant_id, "email", data.email)
        if old is not None and old.strip().lower() != data.email.strip().lower():
            # A new address may work: the old one's bounce mark no longer stops mail.
            from loyalwallet.messaging import suppression

            session.flush()
            suppression.clear(session, merchant_id, "email", old, customer.id)
    if data.birthday:
        customer.birthday_enc = _seal(merchant_id, "birthday", data.birthday.isoformat())
        customer.birth_md = data.birthday.month * 100 + data.birthday.day
    if data.gender:
        customer.gender = data.gender
    if data.extra:
        merged = {**(read_extra(customer) or {}), **data.extra}
        customer.extra_enc = _seal(merchant_id, "extra", json.dumps(merged, ensure_ascii=False))
    if data.locale:
        customer.locale = data.locale
    session.flush()
    return customer, created


def read_extra(customer: Customer) -> dict[str, Any] | None:
    raw = crypto.open_(customer.extra_enc, merchant_id=customer.merchant_id, column="extra")
    return json.loads(raw) if raw else None


def view(customer: Customer, *, full: bool = False) -> dict[str, Any]:
    """What staff see of a guest: the phone masked unless `full` (owner/manager pages)."""
    mid = customer.merchant_id
    phone = crypto.open_(customer.phone_enc, merchant_id=mid, column="phone")
    birthday = crypto.open_(customer.birthday_enc, merchant_id=mid, column="birthday")
    out: dict[str, Any] = {
        "id": customer.id,
        "name": crypto.open_(customer.name_enc, merchant_id=mid, column="name"),
        "phone": (phone if full else mask(phone)) if phone else None,
        "marketing_consent": customer.marketing_consent,
        "erased": customer.erased_at is not None,
    }
    if full:
        out["email"] = crypto.open_(customer.email_enc, merchant_id=mid, column="email")
        out["birthday"] = birthday
        out["gender"] = customer.gender
        out["extra"] = read_extra(customer)
        out["created_at"] = customer.created_at.isoformat()
    return out


# Who hears that a guest's consents changed (wiring.py: iiko passes them on to the iiko
# customer). Called as (session, customer) in the caller's transaction, after the change.
CONSENT_LISTENERS: list[Callable[[Session, Customer], None]] = []


def record_consent(
    session: Session,
    customer: Customer,
    kind: str,
    granted: bool,
    text_version: str,
    channel: str,
    details: dict[str, Any] | None = None,
    *,
    now: dt.datetime | None = None,
) -> Consent:
    if kind not in ("personal_data", "marketing"):
        raise Explained("validation_error", "unknown consent kind {kind!r}", kind=kind)
    consent = Consent(
        merchant_id=customer.merchant_id,
        customer_id=customer.id,
        kind=kind,
        granted=granted,
        text_version=text_version,
        channel=channel,
        details=details or {},
        created_at=now or utcnow(),
    )
    session.add(consent)
    if kind == "marketing":
        customer.marketing_consent = granted
    for listener in CONSENT_LISTENERS:
        listener(session, customer)
    return consent


def export(session: Session, customer: Customer) -> dict[str, Any]:
    """Everything stored about a guest, decrypted (a data-subject access request)."""
    consents = session.scalars(
        select(Consent).where(Consent.customer_id == customer.id).order_by(Consent.id)
    ).all()
    data = view(customer, full=True)
    data["consents"] = [
        {
            "kind": c.kind,
            "granted": c.granted,
            "text_version": c.text_version,
            "channel": c.channel,
            "at": c.created_at.isoformat(),
        }
        for c in consents
    ]
    return data


def erase(session: Session, customer: Customer) -> list[str]:
    """Forget a guest's PII. Cards, purchases and the ledger stay (accounting needs
    them) but no longer lead to a person. Copies of the data in other tables' JSON (old
    answers, outbox rows, webhook bodies, audit entries) are scrubbed too (erasure.py).
    Returns the values erased, to redact from what the caller writes next (an audit
    reason); call erasure.after_commit() once the transaction is committed."""
    plain = view(customer, full=True)
    values = erasure.values_of(plain)
    # Bounce marks and bounce records keyed by the guest's addresses go too.
    from loyalwallet.messaging import suppression

    suppression.forget(session, customer.merchant_id, customer.id, plain.get("email"), plain.get("phone"))
    erasure.scrub(session, customer.merchant_id, values)
    customer.phone_index = None
    customer.phone_enc = None
    customer.name_enc = None
    customer.email_enc = None
    customer.birthday_enc = None
    customer.birth_md = None
    customer.extra_enc = None
    customer.gender = None
    customer.marketing_consent = False
    customer.erased_at = utcnow()
    # The Telegram chats bound to the guest's cards lead to the person: unbound.
    from loyalwallet.cards.models import Card
    from loyalwallet.tgcard.models import TelegramChat

    session.execute(
        delete(TelegramChat).where(
            TelegramChat.card_id.in_(select(Card.id).where(Card.customer_id == customer.id))
        )
    )
    for listener in CONSENT_LISTENERS:  # erased: no consent left (iiko hears "revoked")
        listener(session, customer)
    return values
