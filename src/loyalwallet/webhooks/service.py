"""Webhook endpoints: register, change, rotate the secret, fan business events out to
them (one outbox row per delivery) and deliver each row, signed."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from loyalwallet import crypto, db
from loyalwallet.errors import DomainError, Explained, not_found
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.service import audit
from loyalwallet.outbox.dispatch import event_id
from loyalwallet.outbox.handlers import Delivery, Permanent, Retry
from loyalwallet.outbox.models import OutboxMessage
from loyalwallet.outbox.service import enqueue
from loyalwallet.webhooks import client, guard
from loyalwallet.webhooks.models import WebhookEndpoint

log = logging.getLogger("loyalwallet.webhooks")

TOPIC = "webhook.deliver"
# Business events a merchant can subscribe to (other parts may append theirs).
EVENT_NAMES: list[str] = ["card.created", "purchase.created", "purchase.refunded", "card.tier_changed"]
EVENT_NAMES += ["certificate.sold", "certificate.spent", "certificate.refunded", "certificate.expired"]
EVENT_NAMES += [
    "subscription.sold",
    "subscription.used",
    "subscription.returned",
    "subscription.renewed",
    "subscription.refunded",
    "subscription.expired",
]
EVENT_NAMES += ["certificate.voided"]
SECRET_PREFIX = "whsec_"
MAX_ENDPOINTS = 20


def validate_url(url: str) -> str:
    """A URL webhooks may go to (see guard.py): http(s), no credentials, https unless
    allowed, and a host resolving to public addresses only."""
    try:
        return guard.check_url(url)
    except guard.Refused as exc:
        raise DomainError(exc.code, exc.reason, field="url") from None


def validate_events(events: list[str]) -> list[str]:
    unknown = sorted(set(events) - set(EVENT_NAMES))
    if unknown:
        raise Explained(
            "validation_error",
            "unknown event(s) {unknown}; known: {event_names}",
            unknown=", ".join(unknown),
            event_names=", ".join(EVENT_NAMES),
            extra={"field": "events"},
        )
    return sorted(set(events))


def _seal_secret(merchant_id: int, secret: str) -> bytes:
    sealed = crypto.seal(secret, merchant_id=merchant_id, column="webhook_secret")
    assert sealed is not None
    return sealed


def secret_of(endpoint: WebhookEndpoint) -> str:
    secret = crypto.open_(endpoint.secret_enc, merchant_id=endpoint.merchant_id, column="webhook_secret")
    assert secret is not None
    return secret


def view(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "events": endpoint.events or [],
        "active": endpoint.active,
        "last_status": endpoint.last_status,
        "last_error": endpoint.last_error,
        "last_attempt_at": endpoint.last_attempt_at.isoformat() if endpoint.last_attempt_at else None,
        "last_success_at": endpoint.last_success_at.isoformat() if endpoint.last_success_at else None,
        "failures": endpoint.failures,
        "created_at": endpoint.created_at.isoformat(),
    }


def get(session: Session, actor: Actor, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.merchant_id != actor.merchant_id:
        raise not_found("webhook")
    return endpoint


def create(
    session: Session, actor: Actor, url: str, events: list[str], description: str = ""
) -> tuple[WebhookEndpoint, str]:
    """Returns the endpoint and its signing secret (shown once)."""
    actor.require("manager")
    count = len(
        session.scalars(
            select(WebhookEndpoint.id).where(WebhookEndpoint.merchant_id == actor.merchant_id)
        ).all()
    )
    if count >= MAX_ENDPOINTS:
        raise Explained(
            "conflict", "at most {max_endpoints} webhook endpoints per merchant", max_endpoints=MAX_ENDPOINTS
        )
    secret = SECRET_PREFIX + crypto.token(32)
    now = db.utcnow()
    endpoint = WebhookEndpoint(
        merchant_id=actor.merchant_id,
        url=validate_url(url),
        description=description,
        events=validate_events(events),
        secret_enc=_seal_secret(actor.merchant_id, secret),
        active=True,
        failures=0,
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    session.flush()
    audit(
        session,
        actor,
        "webhook.create",
        "webhook",
        endpoint.id,
        {"url": endpoint.url, "events": endpoint.events},
    )
    return endpoint, secret


def change(session: Session, actor: Actor, endpoint_id: int, changes: dict[str, Any]) -> WebhookEndpoint:
    actor.require("manager")
    endpoint = get(session, actor, endpoint_id)
    if "url" in changes:
        endpoint.url = validate_url(changes["url"])
    if "events" in changes:
        endpoint.events = validate_events(changes["events"])
    if "description" in changes:
        endpoint.description = changes["description"]
    if "active" in changes:
        endpoint.active = bool(changes["active"])
        if endpoint.active:
            endpoint.failures = 0
    endpoint.updated_at = db.utcnow()
    audit(session, actor, "webhook.update", "webhook", endpoint.id, changes)
    return endpoint


def remove(session: Session, actor: Actor, endpoint_id: int) -> None:
    actor.require("manager")
    endpoint = get(session, actor, endpoint_id)
    audit(session, actor, "webhook.delete", "webhook", endpoint.id, {"url": endpoint.url})
    session.delete(endpoint)


def rotate_secret(session: Session, actor: Actor, endpoint_id: int) -> str:
    actor.require("manager")
    endpoint = get(session, actor, endpoint_id)
    secret = SECRET_PREFIX + crypto.token(32)
    endpoint.secret_enc = _seal_secret(actor.merchant_id, secret)
    endpoint.updated_at = db.utcnow()
    audit(session, actor, "webhook.rotate_secret", "webhook", endpoint.id)
    return secret


def send_test(session: Session, actor: Actor, endpoint_id: int) -> None:
    """A `ping` delivery to check the URL and the signature check on the other side."""
    actor.require("manager")
    endpoint = get(session, actor, endpoint_id)
    _enqueue_delivery(
        session,
        endpoint,
        name="ping",
        data={"webhook_id": endpoint.id},
        at=db.utcnow().isoformat(),
        event=0,
    )
    audit(session, actor, "webhook.test", "webhook", endpoint.id)


def _enqueue_delivery(
    session: Session, endpoint: WebhookEndpoint, *, name: str, data: dict[str, Any], at: str, event: int
) -> None:
    enqueue(
        session,
        endpoint.merchant_id,
        TOPIC,
        {"endpoint_id": endpoint.id, "event_id": event, "name": name, "data": data, "at": at},
    )


def deliveries(
    session: Session, actor: Actor, endpoint_id: int, status: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    endpoint = get(session, actor, endpoint_id)
    stmt = select(OutboxMessage).where(
        OutboxMessage.merchant_id == actor.merchant_id,
        OutboxMessage.topic == TOPIC,
        OutboxMessage.payload["endpoint_id"].as_integer() == endpoint.id,
    )
    if status is not None:
        stmt = stmt.where(OutboxMessage.status == status)
    rows = session.scalars(stmt.order_by(OutboxMessage.id.desc()).limit(limit)).all()
    return [
        {
            "id": row.id,
            "event": row.payload.get("name"),
            "event_id": row.payload.get("event_id"),
            "status": row.status,
            "attempts": row.attempts,
            "last_error": row.last_error,
            "next_attempt_at": row.next_attempt_at.isoformat() if row.status == "pending" else None,
            "created_at": row.created_at.isoformat(),
            "delivered_at": row.delivered_at.isoformat() if row.delivered_at else None,
        }
        for row in rows
    ]


# --- the worker's side ---------------------------------------------------------------


def fan_out(msg: Delivery) -> None:
    """EVENT_LISTENERS entry: one delivery row per endpoint subscribed to the event."""
    if msg.merchant_id is None:
        return
    name = msg.payload.get("name", "")
    with db.transaction() as session:
        endpoints = session.scalars(
            select(WebhookEndpoint).where(
                WebhookEndpoint.merchant_id == msg.merchant_id, WebhookEndpoint.active.is_(True)
            )
        ).all()
        for endpoint in endpoints:
            if endpoint.events and name not in endpoint.events:
                continue
            _enqueue_delivery(
                session,
                endpoint,
                name=name,
                data=msg.payload.get("data", {}),
                at=msg.payload.get("at", ""),
                event=event_id(msg),
            )


def body_of(msg: Delivery) -> bytes:
    p = msg.payload
    return orjson.dumps(
        {
            "id": f"evt_{p['event_id']}" if p.get("event_id") else f"ping_{msg.id}",
            "type": p["name"],
            "created_at": p.get("at"),
            "merchant_id": msg.merchant_id,
            "data": p.get("data", {}),
        },
        option=orjson.OPT_SORT_KEYS,
    )


def deliver(msg: Delivery) -> None:
    """The `webhook.deliver` handler: POST, record the answer on the endpoint, and
    tell the worker whether to retry (timeouts, 408, 429, 5xx) or give up (other 4xx)."""
    with db.read() as session:
        endpoint = session.get(WebhookEndpoint, msg.payload["endpoint_id"])
        if endpoint is None or not endpoint.active:
            return  # removed or switched off since: nothing to deliver
        url, secret = endpoint.url, secret_of(endpoint)
    try:  # the settings may have changed since it was registered; addresses: on connect
        guard.check_url(url, resolve_host=False)
    except guard.Refused as exc:
        answer = client.Answer(None, f"refused: {exc.reason}", refused=True)
    else:
        answer = client.post(
            url, secret, body_of(msg), event=msg.payload["name"], delivery_id=msg.id, attempt=msg.attempts
        )
    now = db.utcnow()
    values: dict[str, Any] = {"last_status": answer.status, "last_attempt_at": now}
    if answer.ok:
        values |= {"last_error": None, "last_success_at": now, "failures": 0}
    else:
        values |= {"last_error": (answer.error or "")[:500], "failures": WebhookEndpoint.failures + 1}
    with db.transaction() as session:
        session.execute(
            update(WebhookEndpoint).where(WebhookEndpoint.id == msg.payload["endpoint_id"]).values(**values)
        )
    if answer.ok:
        return
    if answer.refused:  # a non-public address (or http where https is required): never retried
        raise Permanent(answer.error or "refused")
    status = answer.status
    if status is None or status in (408, 425, 429) or status >= 500:
        raise Retry(answer.error or "no answer", after=answer.retry_after)
    raise Permanent(answer.error or f"HTTP {status}")
