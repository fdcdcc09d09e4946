"""Helpers for the enrollment tests: walk the join form and read the SMS code."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from loyalwallet.customers.phones import to_e164
from loyalwallet.enrollment.sms import console
from loyalwallet.outbox import worker

BONUS_RULES: dict[str, Any] = {
    "tiers": [
        {"name": "Bronze", "min_spend": 0, "cashback_pct": 5},
        {"name": "Silver", "min_spend": 1_000_000, "cashback_pct": 10},
    ],
    "welcome_points": 100,
    "referral_points": 50,
    "max_redeem_pct": 50,
}


def submit(client: TestClient, program_id: int, phone: str, query: str = "", **fields: str) -> Any:
    data = {"phone": phone, "personal_data": "yes", **fields}
    return client.post(f"/join/{program_id}{query}", data=data, follow_redirects=False)


def start(client: TestClient, program_id: int, phone: str, **fields: str) -> str:
    """Open the form (as a browser would: it sets the device cookie), post it; returns
    the verify path."""
    assert client.get(f"/join/{program_id}").status_code == 200
    r = submit(client, program_id, phone, **fields)
    assert r.status_code == 303, r.text
    return str(r.headers["location"])


def sms_code(phone: str) -> str:
    """Deliver queued SMS through the outbox; the code the console provider 'sent'."""
    worker.drain()
    sms = console.last_to(to_e164(phone))
    assert sms is not None, f"no SMS to {phone}"
    match = re.search(r"\b(\d{6})\b", sms.text)
    assert match
    return match.group(1)


def join(client: TestClient, program_id: int, phone: str, **fields: str) -> tuple[str, str]:
    """The whole join; returns (done path, web card path)."""
    verify = start(client, program_id, phone, **fields)
    r = client.post(verify, data={"code": sms_code(phone)}, follow_redirects=False)
    assert r.status_code == 303, r.text
    done = str(r.headers["location"])
    page = client.get(done)
    assert page.status_code == 200, page.text
    match = re.search(r'href="(/c/[A-Za-z0-9_-]+)"', page.text)
    assert match, page.text
    return done, match.group(1)


def connect_wallets(merchant_id: int) -> None:
    """The café's own Apple certificate and Google issuer, so both wallet buttons show."""
    from loyalwallet import db
    from loyalwallet.wallet.apple import certs, credentials
    from loyalwallet.wallet.google.issuer import import_key
    from loyalwallet.wallet.google.keys import development_key_file

    with db.transaction() as session:
        credentials.store_identity(session, certs.development_chain(f"pass.test.m{merchant_id}"), merchant_id)
        import_key(
            session, development_key_file(f"m{merchant_id}"), f"33880000000{merchant_id:08d}", merchant_id
        )
    credentials.reset_caches()


def merge_invitation_card(merchant_id: int, program: int, source: int, target: int) -> None:
    """The invitation card `source` merged into the guest's card `target`, as the join
    flow does (enrollment/join.py: the merge, then its Join row)."""
    from loyalwallet import db
    from loyalwallet.cards.models import Card
    from loyalwallet.enrollment.invitations import merge_invitation
    from loyalwallet.enrollment.models import Join
    from loyalwallet.programs.models import Program

    with db.transaction() as session:
        prog = session.get(Program, program)
        src, dst = session.get(Card, source), session.get(Card, target)
        assert prog is not None and src is not None and dst is not None
        merge_invitation(session, prog, src, dst, db.utcnow())
        session.add(
            Join(
                merchant_id=merchant_id,
                program_id=program,
                card_id=target,
                kind="invitation",
                created=False,
                invitation_card_id=source,
                created_at=db.utcnow(),
            )
        )
