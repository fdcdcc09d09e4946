"""Gift certificates: sell, look up, spend without a card, refund such a spend, cancel.

Spending inside a purchase (a guest with a loyalty card) is in certificates.till, called
by the checkout. Every write here is one transaction: lock the certificate, move money
through certificates.ledger, emit `certificate.*` events, store the idempotent answer.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from typing import Any

from pydantic import BaseModel
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from loyalwallet import crypto
from loyalwallet.certificates import ledger, rules
from loyalwallet.certificates.models import CertificateEntry, GiftCertificate
from loyalwallet.certificates.schemas import CertificateIn, RedemptionIn, RedemptionRefundIn, VoidIn
from loyalwallet.checkout import idempotency
from loyalwallet.config import get_settings
from loyalwallet.customers.phones import to_e164
from loyalwallet.db import utcnow
from loyalwallet.enrollment.sms import queue_sms
from loyalwallet.errors import DomainError
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.models import Merchant
from loyalwallet.merchants.service import audit, get_location, get_merchant
from loyalwallet.messaging import gift_email
from loyalwallet.outbox.service import emit_event
from loyalwallet.text import gettext_for, money

_CERTS = GiftCertificate.__table__
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


def _claim(
    session: Session, actor: Actor, scope: str, key: str | None, body: BaseModel
) -> int | tuple[int, dict[str, Any]] | None:
    if key is None:
        return None
    return idempotency.claim(
        session, actor.merchant_id, scope, key, idempotency.request_hash(body.model_dump())
    )


def _store(session: Session, record: int | None, response: dict[str, Any]) -> None:
    if record is not None:
        idempotency.store(session, record, 201, response)


def _location(session: Session, actor: Actor, location_id: int | None) -> int | None:
    if location_id is None:
        return actor.location_id
    if actor.location_id is not None and location_id != actor.location_id:
        raise DomainError("forbidden", "this key is bound to another location")
    actor.check_location(location_id)
    get_location(session, actor.merchant_id, location_id)
    return location_id


def valid_days_setting(settings: dict[str, Any]) -> int | None:
    """The merchant's default validity (settings["certificates"]["valid_days"]): 365
    unless set; null = never expires."""
    section = settings.get("certificates") or {}
    if "valid_days" in section:
        value = section["valid_days"]
        return None if value is None else int(value)
    return rules.DEFAULT_VALID_DAYS


def urls(cert: GiftCertificate) -> dict[str, str]:
    base = get_settings().base_url
    return {
        "web_url": f"{base}/g/{cert.public_token}",
        "pdf_url": f"{base}/g/{cert.public_token}/print.pdf",
        "apple_pass_url": f"{base}/g/{cert.public_token}/pass.pkpass",
    }


def view(
    cert: GiftCertificate, *, with_contacts: bool = True, now: dt.datetime | None = None
) -> dict[str, Any]:
    now = now or utcnow()
    status = cert.status
    if status == "active" and cert.expires_at is not None and cert.expires_at <= now:
        status = "expired"  # the sweep writes it off within a minute
    out: dict[str, Any] = {
        "id": cert.id,
        "code": cert.code,
        "code_display": rules.grouped(cert.code),
        "status": status,
        "currency": cert.currency,
        "initial_amount": cert.initial_amount,
        "balance": cert.balance if status == "active" else 0,
        "expires_at": cert.expires_at.isoformat() if cert.expires_at else None,
        "design": cert.design,
        "message": cert.message,
        "external_id": cert.external_id,
        "location_id": cert.location_id,
        "created_at": cert.created_at.isoformat(),
        **urls(cert),
    }
    if with_contacts:
        m = cert.merchant_id
        out["buyer_contact"] = crypto.open_(cert.buyer_enc, merchant_id=m, column="gift_certificates.buyer")
        out["recipient_contact"] = crypto.open_(
            cert.recipient_enc, merchant_id=m, column="gift_certificates.recipient"
        )
        out["recipient_name"] = crypto.open_(
            cert.recipient_name_enc, merchant_id=m, column="gift_certificates.recipient_name"
        )
    return out


def _event_data(cert: GiftCertificate, **extra: Any) -> dict[str, Any]:
    # Webhooks never carry the code (a bearer secret) nor the contacts (PII).
    return {"id": cert.id, "certificate": rules.masked(cert.code), "balance": cert.balance, **extra}


def sell(
    session: Session, actor: Actor, body: CertificateIn, idempotency_key: str | None = None
) -> tuple[int, dict[str, Any], bool]:
    """Sell a certificate: its code, its `issue` entry (the amount paid) and `certificate.sold`."""
    record = _claim(session, actor, "certificate.sell", idempotency_key, body)
    if isinstance(record, tuple):
        return record[0], record[1], True
    location_id = _location(session, actor, body.location_id)
    merchant = get_merchant(session, actor.merchant_id)
    now = utcnow()
    valid_days = (
        body.valid_days if body.valid_days is not None else valid_days_setting(merchant.settings or {})
    )
    m = actor.merchant_id
    values = {
        "merchant_id": m,
        "code": rules.new_code(),
        "public_token": crypto_token(),
        "auth_token": crypto_token(),
        "currency": merchant.currency,
        "initial_amount": body.amount,
        "balance": 0,
        "status": "active",
        "design": body.design,
        "message": body.message,
        "buyer_enc": crypto.seal(body.buyer_contact, merchant_id=m, column="gift_certificates.buyer"),
        "recipient_enc": crypto.seal(
            body.recipient_contact, merchant_id=m, column="gift_certificates.recipient"
        ),
        "recipient_name_enc": crypto.seal(
            body.recipient_name, merchant_id=m, column="gift_certificates.recipient_name"
        ),
        "location_id": location_id,
        "actor_type": actor.kind,
        "actor_id": actor.id,
        "external_id": body.external_id,
        "expires_at": rules.expires_at(now, valid_days),
        "created_at": now,
        "updated_at": now,
    }
    cert_id = session.execute(insert(_CERTS).returning(_CERTS.c.id), values).scalar_one()
    cert = session.get_one(GiftCertificate, cert_id)
    ledger.move(
        session, cert, "issue", body.amount, actor, now, location_id=location_id, external_id=body.external_id
    )
    audit(session, actor, "certificate.sell", "gift_certificate", cert.id, {"amount": body.amount})
    emit_event(session, m, "certificate.sold", _event_data(cert, amount=body.amount))
    response = view(cert, now=now)
    response["sent"] = None
    if body.send_to_recipient:
        response["sent"] = _send_link(session, merchant, cert, body)
    _store(session, record, response)
    return 201, response, False


def _send_link(session: Session, merchant: Merchant, cert: GiftCertificate, body: CertificateIn) -> str:
    """Queue the SMS (a phone number) or the e-mail (an address) with the certificate's
    link to the recipient (through the outbox). Returns "sms" or "email"."""
    if not body.recipient_contact:
        raise DomainError(
            "validation_error", "send_to_recipient needs recipient_contact", field="recipient_contact"
        )
    contact = body.recipient_contact.strip()
    if "@" in contact:
        if not _EMAIL.match(contact):
            raise DomainError("validation_error", "not an e-mail address", field="recipient_contact")
        gift_email.queue(session, merchant.id, cert.id, contact, merchant.locale or "ru")
        return "email"
    try:
        phone = to_e164(contact, get_settings().default_region)
    except DomainError:
        raise DomainError(
            "validation_error",
            "recipient_contact is neither a phone number nor an e-mail address",
            field="recipient_contact",
        ) from None
    _ = gettext_for(merchant.locale or "ru")
    text = _("%(merchant)s: a gift certificate for %(amount)s for you: %(url)s") % {
        "merchant": merchant.name,
        "amount": money(cert.initial_amount, cert.currency, trim_zero_cents=True),
        "url": urls(cert)["web_url"],
    }
    queue_sms(session, merchant.id, phone, text, purpose="certificate")
    return "sms"


def crypto_token() -> str:
    return secrets.token_urlsafe(24)


def get(session: Session, actor: Actor, code: str) -> dict[str, Any]:
    return view(ledger.find(session, actor.merchant_id, code, lock=False))


def by_token(session: Session, token: str) -> GiftCertificate | None:
    return session.scalar(select(GiftCertificate).where(GiftCertificate.public_token == token))


def entries(session: Session, cert: GiftCertificate, limit: int = 100) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(CertificateEntry)
        .where(CertificateEntry.certificate_id == cert.id)
        .order_by(CertificateEntry.id.desc())
        .limit(limit)
    ).all()
    return [
        {
            "id": e.id,
            "kind": e.kind,
            "amount": e.amount,
            "purchase_id": e.purchase_id,
            "refund_id": e.refund_id,
            "spend_id": e.spend_id,
            "location_id": e.location_id,
            "external_id": e.external_id,
            "created_at": e.created_at.isoformat(),
        }
        for e in rows
    ]


def list_certificates(
    session: Session, actor: Actor, status: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    stmt = select(GiftCertificate).where(GiftCertificate.merchant_id == actor.merchant_id)
    if status is not None:
        stmt = stmt.where(GiftCertificate.status == status)
    rows = session.scalars(stmt.order_by(GiftCertificate.id.desc()).limit(limit)).all()
    return [view(c, with_contacts=False) for c in rows]


def redeem(
    session: Session, actor: Actor, code: str, body: RedemptionIn, idempotency_key: str | None = None
) -> tuple[int, dict[str, Any], bool]:
    """Spend `amount` from the certificate without a purchase on a loyalty card."""
    record = _claim(session, actor, f"certificate.redeem:{rules.normalise_code(code)}", idempotency_key, body)
    if isinstance(record, tuple):
        return record[0], record[1], True
    location_id = _location(session, actor, body.location_id)
    cert = ledger.find(session, actor.merchant_id, code, lock=True)
    now = utcnow()
    rules.check_usable(cert.status, cert.expires_at, now)
    paid = rules.pay(cert.balance, body.amount, body.amount)
    ledger.check_spend(session, cert, actor, paid, now)
    entry_id = ledger.move(
        session, cert, "spend", -paid, actor, now, location_id=location_id, external_id=body.external_id
    )
    emit_event(
        session, actor.merchant_id, "certificate.spent", _event_data(cert, amount=paid, spend_id=entry_id)
    )
    response = {
        "id": entry_id,
        "amount": paid,
        "refundable": paid,
        "certificate": view(cert, with_contacts=False, now=now),
    }
    _store(session, record, response)
    return 201, response, False


def refund_redemption(
    session: Session,
    actor: Actor,
    code: str,
    spend_id: int,
    body: RedemptionRefundIn,
    idempotency_key: str | None = None,
) -> tuple[int, dict[str, Any], bool]:
    """Give (part of) a card-less spend back to the certificate."""
    record = _claim(session, actor, f"certificate.refund:{spend_id}", idempotency_key, body)
    if isinstance(record, tuple):
        return record[0], record[1], True
    cert = ledger.find(session, actor.merchant_id, code, lock=True)
    spend = session.get(CertificateEntry, spend_id)
    if spend is None or spend.certificate_id != cert.id or spend.kind != "spend":
        raise DomainError("not_found", "no such spend of this certificate", field="spend_id")
    if spend.purchase_id is not None:
        raise DomainError(
            "conflict", "this spend paid a purchase: refund the purchase", purchase_id=spend.purchase_id
        )
    already = ledger.returned_to(session, [spend.id]).get(spend.id, 0)
    amount = rules.standalone_refund(-spend.amount, already, body.amount)
    now = utcnow()
    entry_id = ledger.move(session, cert, "refund", amount, actor, now, spend_id=spend.id)
    if cert.status == "expired" or (cert.expires_at is not None and cert.expires_at <= now):
        ledger.expire(session, cert, now)
    emit_event(
        session,
        actor.merchant_id,
        "certificate.refunded",
        _event_data(cert, amount=amount, spend_id=spend.id),
    )
    response = {
        "id": entry_id,
        "spend_id": spend.id,
        "amount": amount,
        "refundable": -spend.amount - already - amount,
        "certificate": view(cert, with_contacts=False, now=now),
    }
    _store(session, record, response)
    return 201, response, False


def void(session: Session, actor: Actor, code: str, body: VoidIn) -> dict[str, Any]:
    """Cancel a certificate (the sale is returned at the till, or it was lost): what is
    left is written off and it can no longer be spent. Managers and owners only."""
    actor.require("manager")
    cert = ledger.find(session, actor.merchant_id, code, lock=True)
    if cert.status == "void":
        raise DomainError("certificate_unavailable", "this gift certificate is already cancelled")
    now = utcnow()
    left = cert.balance
    if left:
        ledger.move(session, cert, "void", -left, actor, now)
    cert.status = "void"
    audit(
        session,
        actor,
        "certificate.void",
        "gift_certificate",
        cert.id,
        {"amount": left, "reason": body.reason},
    )
    emit_event(session, actor.merchant_id, "certificate.voided", _event_data(cert, amount=left))
    return view(cert, now=now)
