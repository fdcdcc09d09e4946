"""A gift certificate in a purchase on a loyalty card (checkout.service calls these).

`certificate` (its code) and `certificate_amount` (optional) in the purchase body: after
the tier discount, the coupon and the points, the certificate pays from what is left to
pay (certificates.rules has the order and the refund arithmetic). The card is locked
first, then the certificate (the lock order everywhere).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalwallet.certificates import ledger, rules
from loyalwallet.certificates.models import CertificateEntry, GiftCertificate
from loyalwallet.certificates.service import view
from loyalwallet.merchants.actors import Actor
from loyalwallet.outbox.service import emit_event


@dataclass
class Payment:
    cert: GiftCertificate
    paid: int


def price(
    session: Session,
    merchant_id: int,
    code: str,
    wanted: int | None,
    to_pay: int,
    now: dt.datetime,
    *,
    lock: bool,
) -> Payment:
    """What the certificate pays of `to_pay`; raises the certificate_* errors."""
    cert = ledger.find(session, merchant_id, code, lock=lock)
    rules.check_usable(cert.status, cert.expires_at, now)
    return Payment(cert, rules.pay(cert.balance, to_pay, wanted))


def spend(
    session: Session,
    actor: Actor,
    payment: Payment,
    purchase_id: int,
    location_id: int | None,
    now: dt.datetime,
) -> None:
    """Write the spend of a priced payment (nothing when it pays nothing)."""
    if payment.paid <= 0:
        return
    cert = payment.cert
    ledger.check_spend(session, cert, actor, payment.paid, now)
    entry_id = ledger.move(
        session, cert, "spend", -payment.paid, actor, now, purchase_id=purchase_id, location_id=location_id
    )
    emit_event(
        session,
        actor.merchant_id,
        "certificate.spent",
        {
            "id": cert.id,
            "certificate": rules.masked(cert.code),
            "balance": cert.balance,
            "amount": payment.paid,
            "spend_id": entry_id,
            "purchase_id": purchase_id,
        },
    )


def answer(payment: Payment, to_pay: int, now: dt.datetime) -> dict[str, Any]:
    """What the purchase (or quote) answer adds when a certificate is used."""
    return {
        "certificate_paid": payment.paid,
        "to_collect": to_pay - payment.paid,
        "certificate": view(payment.cert, with_contacts=False, now=now),
    }


def refund(
    session: Session,
    actor: Actor,
    purchase_id: int,
    to_pay: int,
    money_refunded_after: int,
    refund_id: int,
    now: dt.datetime,
) -> dict[str, Any] | None:
    """Give the certificate(s) that paid this purchase their share of a refund.
    Returns what the refund answer adds, or None when no certificate paid it."""
    spends = session.execute(
        select(CertificateEntry.id, CertificateEntry.certificate_id, CertificateEntry.amount)
        .where(CertificateEntry.purchase_id == purchase_id, CertificateEntry.kind == "spend")
        .order_by(CertificateEntry.id)
    ).all()
    if not spends:
        return None
    already = ledger.returned_to(session, [s.id for s in spends])
    total = 0
    view_ = None
    for spend_id, cert_id, amount in spends:
        share = rules.refund_share(-amount, to_pay, money_refunded_after, already.get(spend_id, 0))
        cert = ledger.lock_by_id(session, cert_id)
        if share:
            ledger.move(
                session,
                cert,
                "refund",
                share,
                actor,
                now,
                purchase_id=purchase_id,
                refund_id=refund_id,
                spend_id=spend_id,
            )
            if cert.status == "expired" or (cert.expires_at is not None and cert.expires_at <= now):
                ledger.expire(session, cert, now)
            emit_event(
                session,
                actor.merchant_id,
                "certificate.refunded",
                {
                    "id": cert.id,
                    "certificate": rules.masked(cert.code),
                    "balance": cert.balance,
                    "amount": share,
                    "spend_id": spend_id,
                    "purchase_id": purchase_id,
                    "refund_id": refund_id,
                },
            )
        total += share
        view_ = view(cert, with_contacts=False, now=now)
    return {"certificate_returned": total, "certificate": view_}
