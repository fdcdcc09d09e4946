"""The merchant's iiko connection: connect (checked against iiko before anything is
stored), test, status, disconnect.

Everything iiko is asked happens before the transaction writes: a refused login, an
unknown organisation or a bad range leaves the database as it was.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalwallet import crypto
from loyalwallet.db import utcnow
from loyalwallet.errors import DomainError, Explained
from loyalwallet.integrations.iiko import rules
from loyalwallet.integrations.iiko.client import IikoClient, IikoError
from loyalwallet.integrations.iiko.models import IikoConnection, IikoGuest
from loyalwallet.outbox.models import OutboxMessage
from loyalwallet.programs.models import Program

COLUMN = "iiko.api_login"


def connection(session: Session, merchant_id: int) -> IikoConnection | None:
    return session.scalar(select(IikoConnection).where(IikoConnection.merchant_id == merchant_id))


def require(session: Session, merchant_id: int) -> IikoConnection:
    row = connection(session, merchant_id)
    if row is None:
        raise DomainError("iiko_not_connected", "connect iiko first (loyalwallet iiko connect)")
    return row


def programme_tiers(session: Session, merchant_id: int) -> list[str] | None:
    """The tiers a new iiko programme starts with: the tier names the connection maps iiko
    customer categories to, in mapping order ("Guest" when none is mapped); None when the
    merchant has no iiko connection (an iiko programme cannot be made then)."""
    row = connection(session, merchant_id)
    if row is None:
        return None
    names = list(dict.fromkeys(str(t) for t in (row.tiers or {}).values()))
    return names or ["Guest"]


def client_for(row: IikoConnection) -> IikoClient:
    login = crypto.open_(row.api_login_sealed, merchant_id=row.merchant_id, column=COLUMN)
    assert login is not None
    return IikoClient(login, row.organization_id)


def as_domain(exc: IikoError) -> DomainError:
    """An iiko failure met while a person waits (connect, join): a stable code."""
    if exc.status == 401:
        return Explained(
            "iiko_login_invalid",
            "iiko does not accept this API login: {description}",
            description=exc.description,
        )
    return DomainError("iiko_unavailable", rules.plain(exc.status, exc.description))


def discover(api_login: str, organization_id: str | None = None) -> dict[str, Any]:
    """Ask iiko what this login reaches: organisations, and for the chosen (or only) one
    its loyalty programmes and customer categories. iiko's answer, as it came."""
    api_login = api_login.strip()
    if not api_login:
        raise DomainError("validation_error", "the API login is empty")
    client = IikoClient(api_login)
    try:
        orgs = client.organizations()
        answer: dict[str, Any] = {"organizations": orgs}
        if organization_id is None and len(orgs) == 1:
            organization_id = orgs[0]["id"]
        if organization_id is None:
            return answer
        if organization_id not in {o["id"] for o in orgs}:
            names = ", ".join(f"{o['name']} ({o['id']})" for o in orgs) or "none"
            raise Explained(
                "iiko_organization_unknown",
                "this API login has no organisation {organization_id}; it has: {names}",
                organization_id=organization_id,
                names=names,
            )
        client.organization_id = organization_id
        answer["organization"] = next(o for o in orgs if o["id"] == organization_id)
        answer["programs"] = client.programs()
        answer["categories"] = client.categories()
    except IikoError as exc:
        raise as_domain(exc) from exc
    return answer


def connect(
    session: Session,
    merchant_id: int,
    api_login: str,
    *,
    card_first: int,
    card_last: int,
    organization_id: str | None = None,
    wallet_id: str | None = None,
    tiers: dict[str, str] | None = None,
    ledger_program_id: int | None = None,
    now: dt.datetime | None = None,
) -> IikoConnection:
    """Store (or replace) the merchant's connection after iiko confirmed every part."""
    now = now or utcnow()
    problem = rules.check_range(card_first, card_last)
    if problem:
        raise Explained("validation_error", "card range: {problem}", problem=problem)
    if ledger_program_id is not None:
        ledger = session.get(Program, ledger_program_id)
        if ledger is None or ledger.merchant_id != merchant_id or ledger.kind == "iiko":
            raise DomainError(
                "validation_error", "the ledger programme must be one of this merchant's own programmes"
            )
    answer = discover(api_login, organization_id)
    if "organization" not in answer:
        names = ", ".join(f"{o['name']} ({o['id']})" for o in answer["organizations"]) or "none"
        raise Explained(
            "iiko_organization_unknown",
            "choose the organisation (--organization ID); this login has: {names}",
            names=names,
        )
    program = rules.pick_program(answer["programs"], wallet_id)
    if program is None:
        raise DomainError("validation_error", "iiko has no loyalty programme with that wallet")
    categories = {c["id"]: c["name"] for c in answer["categories"]}
    by_name = {name.casefold(): cid for cid, name in categories.items()}
    mapped: dict[str, str] = {}
    for key, tier in (tiers or {}).items():
        cid = key if key in categories else by_name.get(key.casefold())
        if cid is None:
            raise Explained("validation_error", "iiko has no customer category {key!r}", key=key)
        mapped[cid] = tier
    row = connection(session, merchant_id)
    if row is None:
        row = IikoConnection(merchant_id=merchant_id, created_at=now, webhook_token=crypto.token(24))
        session.add(row)
    elif (row.card_first, row.card_last) != (card_first, card_last):
        row.card_next = card_first
    api_login = api_login.strip()
    row.api_login_sealed = crypto.seal(api_login, merchant_id=merchant_id, column=COLUMN) or b""
    row.login_hint = "…" + api_login[-4:]
    row.organization_id = answer["organization"]["id"]
    row.organization_name = answer["organization"]["name"][:200]
    row.program_id = str(program["id"])
    row.wallet_id = str(program.get("walletId") or program["id"])
    row.wallet_name = str(program.get("name") or "")[:200]
    row.card_first, row.card_last = card_first, card_last
    if row.card_next is None or not card_first <= row.card_next <= card_last + 1:
        row.card_next = card_first
    row.categories = categories
    row.tiers = mapped
    row.ledger_program_id = ledger_program_id
    row.state, row.last_error, row.checked_at, row.updated_at = "ok", None, now, now
    session.flush()
    return row


def test(session: Session, merchant_id: int, now: dt.datetime | None = None) -> dict[str, Any]:
    """Ask iiko again with the stored login; record the state; return iiko's answer."""
    row = require(session, merchant_id)
    now = now or utcnow()
    client = client_for(row)
    try:
        answer = discover(client.api_login, row.organization_id)
    except DomainError as exc:
        row.state, row.last_error, row.checked_at = "error", exc.detail[:500], now
        return {"ok": False, "error": exc.detail, "code": exc.code}
    row.state, row.last_error, row.checked_at = "ok", None, now
    row.categories = {c["id"]: c["name"] for c in answer["categories"]}
    return {"ok": True, **answer}


def record_failure(session: Session, merchant_id: int, message: str) -> None:
    row = connection(session, merchant_id)
    if row is not None:
        row.state, row.last_error, row.updated_at = "error", message[:500], utcnow()


def record_success(session: Session, merchant_id: int) -> None:
    row = connection(session, merchant_id)
    if row is not None and row.state != "ok":
        row.state, row.last_error, row.updated_at = "ok", None, utcnow()


def status(session: Session, merchant_id: int) -> dict[str, Any]:
    row = connection(session, merchant_id)
    if row is None:
        return {"connected": False}
    guests = session.scalar(select(func.count()).where(IikoGuest.merchant_id == merchant_id)) or 0
    pending = session.scalar(
        select(func.count()).where(
            OutboxMessage.merchant_id == merchant_id,
            OutboxMessage.topic.like("iiko.%"),
            OutboxMessage.status == "pending",
        )
    )
    return {
        "connected": True,
        "api_login": row.login_hint,
        "organization": {"id": row.organization_id, "name": row.organization_name},
        "program_id": row.program_id,
        "wallet": {"id": row.wallet_id, "name": row.wallet_name},
        "card_range": {
            "first": row.card_first,
            "last": row.card_last,
            "next": row.card_next,
            "left": max(0, row.card_last - row.card_next + 1),
        },
        "tiers": {row.categories.get(k, k): v for k, v in (row.tiers or {}).items()},
        "categories": row.categories,
        "state": row.state,
        "last_error": row.last_error,
        "checked_at": row.checked_at.isoformat() if row.checked_at else None,
        "guests": guests,
        "deliveries_pending": pending or 0,
        "webhook_path": f"/integrations/iiko/{row.merchant_id}/webhook",
        "webhook_token": row.webhook_token,
        "ledger_program_id": row.ledger_program_id,
    }


def disconnect(session: Session, merchant_id: int) -> bool:
    row = connection(session, merchant_id)
    if row is None:
        return False
    session.delete(row)
    return True
