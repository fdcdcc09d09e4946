"""HTTP API of anti-fraud: rules (owner), the alert list, Telegram settings, the audit log."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from sqlalchemy import func, select

from loyalwallet import db
from loyalwallet.api.deps import manager, owner
from loyalwallet.api.responses import FastJSON
from loyalwallet.errors import DomainError
from loyalwallet.fraud import linking, service
from loyalwallet.fraud.models import Alert
from loyalwallet.fraud.schemas import RulesIn, TelegramIn
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.models import AuditLog
from loyalwallet.merchants.service import audit, get_merchant, today

router = APIRouter(prefix="/api/v1", tags=["anti-fraud"])


def _rules_view(rules: Any) -> dict[str, Any]:
    return {"rules": rules.model_dump(mode="json"), "titles": service.RULE_TITLES}


@router.get("/fraud/rules", summary="Anti-fraud rules of the merchant")
def get_rules(who: Actor = Depends(manager)) -> dict[str, Any]:
    with db.read() as session:
        return _rules_view(service.rules_of(get_merchant(session, who.merchant_id)))


@router.put("/fraud/rules", summary="Change anti-fraud rules (owner); rules not given stay as they are")
def put_rules(body: RulesIn, who: Actor = Depends(owner)) -> dict[str, Any]:
    with db.transaction() as session:
        return _rules_view(service.set_rules(session, who, body.model_dump(mode="json", exclude_none=True)))


@router.get("/alerts", summary="Anti-fraud alerts, newest first")
def list_alerts(
    open: bool = Query(False, description="Only alerts nobody acknowledged yet"),
    rule: str | None = Query(None, max_length=32),
    action: Literal["blocked", "alerted"] | None = Query(None),
    limit: int = Query(100, ge=1, le=1000),
    before_id: int | None = Query(None),
    who: Actor = Depends(manager),
) -> dict[str, Any]:
    with db.read() as session:
        stmt = select(Alert).where(Alert.merchant_id == who.merchant_id)
        if open:
            stmt = stmt.where(Alert.acknowledged_at.is_(None))
        if rule:
            stmt = stmt.where(Alert.rule == rule)
        if action:
            stmt = stmt.where(Alert.action == action)
        if before_id:
            stmt = stmt.where(Alert.id < before_id)
        rows = session.scalars(stmt.order_by(Alert.id.desc()).limit(limit)).all()
        unread = session.scalar(
            select(func.count()).where(Alert.merchant_id == who.merchant_id, Alert.acknowledged_at.is_(None))
        )
        return {"items": [service.alert_view(a) for a in rows], "open": int(unread or 0)}


@router.post("/alerts/{alert_id}/ack", summary="Mark an alert as seen")
def ack(alert_id: int, who: Actor = Depends(manager)) -> dict[str, Any]:
    with db.transaction() as session:
        return service.alert_view(service.acknowledge(session, who, alert_id))


@router.get("/alerts/telegram", summary="Where alerts and the daily digest go (owner)")
def get_telegram(who: Actor = Depends(owner)) -> dict[str, Any]:
    with db.read() as session:
        return service.telegram_view(get_merchant(session, who.merchant_id))


@router.put("/alerts/telegram", summary="Set the owner's Telegram chat (and optionally a bot)")
def put_telegram(body: TelegramIn, who: Actor = Depends(owner)) -> dict[str, Any]:
    with db.transaction() as session:
        merchant = service.set_telegram(session, who, body.model_dump(exclude_unset=True))
        return service.telegram_view(merchant)


@router.post("/alerts/telegram/test", status_code=202, summary="Send a test message to the chat")
def test_telegram(who: Actor = Depends(owner)) -> Response:
    with db.transaction() as session:
        merchant = get_merchant(session, who.merchant_id)
        if not service.send_telegram(session, merchant, f"✅ loyalwallet: {merchant.name}"):
            raise DomainError("conflict", "set a chat_id first (and a bot token, unless the server has one)")
        audit(session, who, "telegram.test", "merchant", merchant.id)
    return FastJSON({"queued": True}, status_code=202)


@router.post(
    "/alerts/telegram/link",
    status_code=201,
    summary="A one-time code and t.me deep link: the chat that presses Start becomes the alert chat",
)
def link_telegram(who: Actor = Depends(owner)) -> Response:
    who.require("owner")
    username = linking.bot_username(who.merchant_id)  # getMe, outside any transaction
    with db.transaction() as session:
        return FastJSON(linking.start(session, who, username), status_code=201)


@router.get("/alerts/telegram/link", summary="Where the latest link stands: pending, linked or expired")
def link_status(who: Actor = Depends(owner)) -> dict[str, Any]:
    with db.read() as session:
        return linking.status(session, who.merchant_id)


@router.post("/alerts/telegram/link/check", summary="Read the bot's messages now and bind the chat")
def link_check(who: Actor = Depends(owner)) -> dict[str, Any]:
    return linking.check(who)


@router.get("/alerts/digest", summary="Yesterday's digest, as Telegram would get it")
def digest(who: Actor = Depends(manager)) -> dict[str, Any]:
    import datetime as dt

    with db.read() as session:
        merchant = get_merchant(session, who.merchant_id)
        day = today(merchant) - dt.timedelta(days=1)
        return {"day": day.isoformat(), "text": service.digest_text(session, merchant, day)}


@router.get("/audit", summary="The audit log: who did what, newest first")
def audit_log(
    action: str | None = Query(None, max_length=64),
    target_type: str | None = Query(None, max_length=32),
    target_id: str | None = Query(None, max_length=64),
    actor_type: str | None = Query(None, max_length=16),
    actor_id: int | None = Query(None),
    limit: int = Query(100, ge=1, le=1000),
    before_id: int | None = Query(None),
    who: Actor = Depends(manager),
) -> dict[str, Any]:
    with db.read() as session:
        stmt = select(AuditLog).where(AuditLog.merchant_id == who.merchant_id)
        for column, value in (
            (AuditLog.action, action),
            (AuditLog.target_type, target_type),
            (AuditLog.target_id, target_id),
            (AuditLog.actor_type, actor_type),
            (AuditLog.actor_id, actor_id),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        if before_id:
            stmt = stmt.where(AuditLog.id < before_id)
        rows = session.scalars(stmt.order_by(AuditLog.id.desc()).limit(limit)).all()
        return {
            "items": [
                {
                    "id": r.id,
                    "action": r.action,
                    "actor_type": r.actor_type,
                    "actor_id": r.actor_id,
                    "target_type": r.target_type,
                    "target_id": r.target_id,
                    "details": r.details,
                    "ip": r.ip,
                    "created_at": r.created_at.isoformat(),
                }
                for r in rows
            ]
        }
