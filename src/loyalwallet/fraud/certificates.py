"""Anti-fraud for gift-certificate spending: the daily limit per certificate
(fraud.rules.max_certificate_spend_per_day). Off / alert (the owner hears, the spend
goes through) / block (fraud_limit, nothing written; the alert is recorded apart)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalwallet.certificates.models import CertificateEntry
from loyalwallet.errors import DomainError
from loyalwallet.fraud import rules as fr
from loyalwallet.fraud.service import _BLOCKED_KEY, _cache, _local_midnight, record_alert
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.service import get_merchant


def check_certificate_spend(
    session: Session,
    actor: Actor,
    *,
    certificate_id: int,
    masked_code: str,
    currency: str,
    amount: int,
    now: dt.datetime,
) -> None:
    """Before a spend of `amount` from a locked certificate is written (one query when
    the rule is on)."""
    rules, tz = _cache.get(session, actor.merchant_id)
    if not fr.needs(rules, "max_certificate_spend_per_day"):
        return
    spent = session.scalar(
        select(func.coalesce(func.sum(-CertificateEntry.amount), 0)).where(
            CertificateEntry.certificate_id == certificate_id,
            CertificateEntry.kind == "spend",
            CertificateEntry.created_at >= _local_midnight(tz, now),
        )
    )
    facts = fr.CertificateSpendFacts(amount=amount, spent_today=int(spent or 0), currency=currency)
    hits = fr.check_certificate_spend(rules, facts)
    if not hits:
        return
    merchant = get_merchant(session, actor.merchant_id)
    context = {
        "operation": "certificate",
        "card_id": None,
        "card_code": masked_code,
        "actor_type": actor.kind,
        "actor_id": actor.id,
        "actor_name": actor.name,
        "location_id": actor.location_id,
        "amount": amount,
        "purchase_id": None,
    }
    blocks = [h for h in hits if h.action == "block"]
    if blocks:
        session.info.setdefault(_BLOCKED_KEY, []).extend((merchant.id, h, context, now) for h in blocks)
        raise DomainError("fraud_limit", blocks[0].message, rule=blocks[0].rule)
    for hit in hits:
        record_alert(session, merchant.id, hit, "alerted", context, now)
