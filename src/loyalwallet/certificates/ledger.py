"""The money ledger of gift certificates: lock, move money, expire, check.

Every movement locks the certificate row (PostgreSQL `SELECT ... FOR UPDATE`; SQLite's
write transaction is BEGIN IMMEDIATE), writes one entry and the cached balance in the
same transaction; a debit never takes the balance below zero. Lock order, where a
purchase is involved: the card, then the purchase, then the certificate.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from loyalwallet.certificates import rules
from loyalwallet.certificates.models import CertificateEntry, GiftCertificate
from loyalwallet.db import for_update, utcnow
from loyalwallet.errors import DomainError, Explained
from loyalwallet.merchants.actors import Actor, system
from loyalwallet.outbox.service import emit_event

_ENTRIES = CertificateEntry.__table__
_INSERT_ENTRY = insert(_ENTRIES).returning(_ENTRIES.c.id)


def _not_found() -> DomainError:
    return DomainError("not_found", "gift certificate not found", field="certificate")


def find(session: Session, merchant_id: int, code: str, *, lock: bool) -> GiftCertificate:
    """The merchant's certificate with this code (another merchant's is not found)."""
    stmt = select(GiftCertificate).where(
        GiftCertificate.merchant_id == merchant_id, GiftCertificate.code == rules.normalise_code(code)
    )
    cert = session.scalar(for_update(stmt) if lock else stmt)
    if cert is None:
        raise _not_found()
    return cert


def lock_by_id(session: Session, certificate_id: int) -> GiftCertificate:
    cert = session.scalar(for_update(select(GiftCertificate).where(GiftCertificate.id == certificate_id)))
    if cert is None:
        raise _not_found()
    return cert


def move(
    session: Session,
    cert: GiftCertificate,
    kind: str,
    amount: int,
    actor: Actor,
    now: dt.datetime,
    **refs: Any,
) -> int:
    """Write one entry of `amount` (signed) on a locked certificate and its balance.
    Returns the entry's id."""
    if cert.balance + amount < 0:
        raise Explained(
            "certificate_insufficient",
            "the gift certificate holds {balance}, {asked} asked",
            balance=cert.balance,
            asked=-amount,
            extra={"balance": cert.balance},
        )
    entry_id: int = session.execute(
        _INSERT_ENTRY,
        {
            "merchant_id": cert.merchant_id,
            "certificate_id": cert.id,
            "kind": kind,
            "amount": amount,
            "purchase_id": refs.get("purchase_id"),
            "refund_id": refs.get("refund_id"),
            "spend_id": refs.get("spend_id"),
            "location_id": refs.get("location_id"),
            "external_id": refs.get("external_id"),
            "actor_type": actor.kind,
            "actor_id": actor.id,
            "created_at": now,
        },
    ).scalar_one()
    cert.balance += amount
    cert.updated_at = now
    return entry_id


def check_spend(session: Session, cert: GiftCertificate, actor: Actor, amount: int, now: dt.datetime) -> None:
    """The anti-fraud daily limit of a spend (fraud.certificates): alert or fraud_limit."""
    from loyalwallet.fraud.certificates import check_certificate_spend

    check_certificate_spend(
        session,
        actor,
        certificate_id=cert.id,
        masked_code=rules.masked(cert.code),
        currency=cert.currency,
        amount=amount,
        now=now,
    )


def returned_to(session: Session, spend_ids: list[int]) -> dict[int, int]:
    """What refunds already gave back to each of these spend entries."""
    if not spend_ids:
        return {}
    rows = session.execute(
        select(CertificateEntry.spend_id, func.sum(CertificateEntry.amount))
        .where(CertificateEntry.spend_id.in_(spend_ids), CertificateEntry.kind == "refund")
        .group_by(CertificateEntry.spend_id)
    ).all()
    return {int(r[0] or 0): int(r[1]) for r in rows}


def expire_due(now: dt.datetime | None = None, batch: int = 200) -> int:
    """The periodic sweep: write off what is left on certificates past their expiry,
    each in its own short transaction. Returns how many expired."""
    from loyalwallet import db

    now = now or utcnow()
    with db.read() as session:
        ids = session.scalars(
            select(GiftCertificate.id)
            .where(GiftCertificate.status == "active", GiftCertificate.expires_at <= now)
            .order_by(GiftCertificate.expires_at)
            .limit(batch)
        ).all()
    done = 0
    for cert_id in ids:
        with db.transaction() as session:
            cert = lock_by_id(session, cert_id)
            if cert.status != "active" or cert.expires_at is None or cert.expires_at > now:
                continue
            expire(session, cert, now)
            done += 1
    return done


def expire(session: Session, cert: GiftCertificate, now: dt.datetime) -> None:
    """Write off the rest of a locked certificate past its date (also when a refund puts
    money back on one that has already expired)."""
    left = cert.balance
    if left:
        move(session, cert, "expiry", -left, system(cert.merchant_id), now)
    cert.status = "expired"
    cert.updated_at = now
    emit_event(
        session,
        cert.merchant_id,
        "certificate.expired",
        {"certificate": rules.masked(cert.code), "id": cert.id, "amount": left},
    )


def check_ledger(session: Session) -> list[dict[str, Any]]:
    """Certificates whose cached balance differs from the sum of their entries, is
    negative, or whose refunds gave a spend back more than it took."""
    totals = (
        select(CertificateEntry.certificate_id, func.sum(CertificateEntry.amount).label("total"))
        .group_by(CertificateEntry.certificate_id)
        .subquery()
    )
    rows = session.execute(
        select(
            GiftCertificate.id,
            GiftCertificate.merchant_id,
            GiftCertificate.code,
            GiftCertificate.balance,
            GiftCertificate.initial_amount,
            func.coalesce(totals.c.total, 0),
        ).outerjoin(totals, totals.c.certificate_id == GiftCertificate.id)
    ).all()
    bad: dict[int, dict[str, Any]] = {}

    def flag(cert_id: int, merchant_id: int, code: str, problem: str) -> None:
        item = bad.setdefault(
            cert_id,
            {
                "certificate_id": cert_id,
                "merchant_id": merchant_id,
                "code": rules.masked(code),
                "problems": [],
            },
        )
        item["problems"].append(problem)

    for cert_id, merchant_id, code, balance, initial, total in rows:
        if balance != total:
            flag(cert_id, merchant_id, code, f"balance {balance} != entries {total}")
        if balance < 0:
            flag(cert_id, merchant_id, code, f"balance {balance} < 0")
        if balance > initial:
            flag(cert_id, merchant_id, code, f"balance {balance} > amount sold {initial}")
    spends = (
        select(CertificateEntry.id, CertificateEntry.amount)
        .where(CertificateEntry.kind == "spend")
        .subquery()
    )
    over = session.execute(
        select(
            GiftCertificate.id,
            GiftCertificate.merchant_id,
            GiftCertificate.code,
            spends.c.id,
            spends.c.amount,
            func.sum(CertificateEntry.amount),
        )
        .join(spends, spends.c.id == CertificateEntry.spend_id)
        .join(GiftCertificate, GiftCertificate.id == CertificateEntry.certificate_id)
        .where(CertificateEntry.kind == "refund")
        .group_by(
            GiftCertificate.id,
            GiftCertificate.merchant_id,
            GiftCertificate.code,
            spends.c.id,
            spends.c.amount,
        )
    ).all()
    for cert_id, merchant_id, code, spend_id, spent, returned in over:
        if returned > -spent:
            flag(cert_id, merchant_id, code, f"spend {spend_id}: refunds {returned} > spent {-spent}")
    return list(bad.values())
