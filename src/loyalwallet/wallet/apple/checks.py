"""The Wallets page's "send a test update to my card", Apple side: the card's pass is
marked changed for the devices holding it and APNs is asked right now (not through the
outbox), so the owner reads APNs's real answer for each device.

Returns plain facts (`outcome` + values); the page words them in the owner's language.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from loyalwallet import db
from loyalwallet.cards.book import get_card
from loyalwallet.wallet.apple import apns, credentials, handlers, updates
from loyalwallet.wallet.apple.models import AppleRegistration

MAX_DEVICES = 20  # a test, not a campaign: the first devices of the card


def test_update(merchant_id: int, code: str) -> dict[str, Any]:
    """Push the devices holding this card's pass. Outcomes: no_certificate, no_devices,
    skipped (development certificate towards Apple), pushed (with each device's answer)."""
    with db.transaction() as session:
        card, _ = get_card(session, merchant_id, code)
        cert = credentials.certificate_for(session, merchant_id)
        if cert is None:
            return {"outcome": "no_certificate"}
        mine = AppleRegistration.card_id == card.id
        targets = session.execute(
            select(AppleRegistration.push_token, AppleRegistration.pass_type_id)
            .where(mine, AppleRegistration.merchant_id == merchant_id)
            .distinct()
            .limit(MAX_DEVICES)
        ).all()
        if not targets:
            return {"outcome": "no_devices", "pass_type_id": cert.pass_type_id}
        # The pass counts as changed: the device that wakes up fetches it again.
        session.execute(update(AppleRegistration).where(mine).values(change_seq=updates.stamp(session)))
        routes = {ptid: credentials.push_route(session, ptid) for ptid in {t[1] for t in targets}}
    answers: list[dict[str, Any]] = []
    try:
        for token, ptid in targets:
            route = routes[ptid]
            if route is None or route.pusher is None:
                reason = route.reason if route is not None else f"no certificate for {ptid}"
                answers.append({"device": token[:8], "status": None, "reason": reason, "ok": False})
                continue
            result = route.pusher.push(token, route.topic)
            if result.gone:
                handlers.forget_token(result.token, result.timestamp_ms if result.status == 410 else None)
            answers.append(
                {
                    "device": token[:8],
                    "status": result.status or None,  # None: APNs did not answer (network)
                    "reason": result.reason,
                    "apns_id": result.apns_id,
                    "ok": result.ok,
                    "gone": result.gone,
                }
            )
    finally:
        for route in routes.values():
            if route is not None and route.pusher is not None:
                apns.release(route.pusher)  # push_route took one use of each
    if all(r is not None and r.pusher is None for r in routes.values()):
        return {"outcome": "skipped", "reason": answers[0]["reason"]}
    return {"outcome": "pushed", "apns": apns.base_url(), "answers": answers}
