"""Google Wallet status: what an owner or operator needs to see (the issuer, classes,
objects, saves, pending and failed deliveries).

The use cases live by what they do: issuer.py (issuers, keys, the builders' facts),
links.py (save links), sync.py (classes, objects, messages, saves), caches.py.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalwallet.outbox.models import OutboxMessage
from loyalwallet.wallet.google.models import GoogleClass, GoogleIssuer, GoogleObject

TOPICS = ("google.patch", "google.class", "google.message", "google.check")


# --- status ------------------------------------------------------------------------------


def status(session: Session, merchant_id: int | None = None) -> dict[str, Any]:
    """What an owner or operator needs to see: the issuer, objects, failed deliveries."""
    issuers = session.scalars(
        select(GoogleIssuer).where(
            GoogleIssuer.merchant_id.is_(None)
            if merchant_id is None
            else GoogleIssuer.merchant_id == merchant_id
        )
    ).all()
    if merchant_id is not None and not issuers:
        issuers = session.scalars(select(GoogleIssuer).where(GoogleIssuer.merchant_id.is_(None))).all()

    def scoped(stmt: Any, column: Any) -> Any:
        return stmt if merchant_id is None else stmt.where(column == merchant_id)

    objects_total = session.scalar(
        scoped(select(func.count()).select_from(GoogleObject), GoogleObject.merchant_id)
    )
    objects_inserted = session.scalar(
        scoped(select(func.count()).where(GoogleObject.inserted.is_(True)), GoogleObject.merchant_id)
    )
    objects_saved = session.scalar(
        scoped(select(func.count()).where(GoogleObject.has_users.is_(True)), GoogleObject.merchant_id)
    )
    classes = session.scalar(scoped(select(func.count()).select_from(GoogleClass), GoogleClass.merchant_id))
    outbox = {
        st: session.scalar(
            scoped(
                select(func.count()).where(OutboxMessage.topic.in_(TOPICS), OutboxMessage.status == st),
                OutboxMessage.merchant_id,
            )
        )
        for st in ("pending", "dead")
    }
    failures = session.execute(
        scoped(
            select(OutboxMessage.id, OutboxMessage.topic, OutboxMessage.payload, OutboxMessage.last_error)
            .where(OutboxMessage.topic.in_(TOPICS), OutboxMessage.status == "dead")
            .order_by(OutboxMessage.id.desc())
            .limit(5),
            OutboxMessage.merchant_id,
        )
    ).all()
    return {
        "configured": bool(issuers),
        "issuers": [
            {
                "scope": "default" if i.merchant_id is None else f"merchant {i.merchant_id}",
                "issuer_id": i.issuer_id,
                "service_account": i.service_account_email,
                "key_id": i.key_id,
                "development": i.development,
                "updated_at": i.updated_at.isoformat(),
            }
            for i in issuers
        ],
        "classes": int(classes or 0),
        "objects": int(objects_total or 0),
        "objects_at_google": int(objects_inserted or 0),
        "objects_saved": int(objects_saved or 0),
        "deliveries_pending": int(outbox["pending"] or 0),
        "deliveries_failed": int(outbox["dead"] or 0),
        "recent_failures": [
            {"id": f.id, "topic": f.topic, "card_id": (f.payload or {}).get("card_id"), "error": f.last_error}
            for f in failures
        ],
    }
