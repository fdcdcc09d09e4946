"""The Wallets page's "send a test update to my card", Google side: the card's object is
sent to Google right now (insert or patch, not through the outbox), so the owner reads
Google's real answer. Plain facts out; the page words them."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import update

from loyalwallet import db
from loyalwallet.cards.book import get_card
from loyalwallet.wallet.google.client import GoogleApiError
from loyalwallet.wallet.google.issuer import issuer_for
from loyalwallet.wallet.google.models import GoogleObject
from loyalwallet.wallet.google.sync import sync_card


def test_update(merchant_id: int, code: str) -> dict[str, Any]:
    """Outcomes: no_issuer, development (a development key talks to no Google), no_object
    (no save link was made for the card yet), sent (Google's verb and whether a guest
    saved it), refused (Google's status and message)."""
    with db.transaction() as session:
        card, _ = get_card(session, merchant_id, code)
        issuer = issuer_for(session, merchant_id)
        if issuer is None:
            return {"outcome": "no_issuer"}
        if not issuer.syncs:
            return {"outcome": "development", "issuer_id": issuer.issuer_id}
        row = session.get(GoogleObject, card.id)
        if row is None:
            return {"outcome": "no_object", "issuer_id": issuer.issuer_id}
        # Sent even when nothing changed since the last sync: this is a test of the link.
        session.execute(update(GoogleObject).where(GoogleObject.card_id == card.id).values(synced_hash=None))
        card_id = card.id
    try:
        verb = sync_card(card_id)
    except GoogleApiError as exc:
        return {"outcome": "refused", "status": exc.status, "message": exc.message, "reason": exc.reason}
    except httpx.HTTPError as exc:
        return {"outcome": "unreachable", "reason": f"{type(exc).__name__}: {exc}"[:300]}
    with db.read() as session:
        row = session.get(GoogleObject, card_id)
        saved = bool(row is not None and row.has_users)
        object_id = row.object_id if row is not None else None
    return {
        "outcome": "sent",
        "verb": verb,
        "saved": saved,
        "object_id": object_id,
        "issuer_id": issuer.issuer_id,
    }
