"""HTTP API of webhooks (manager and owner): endpoints, secrets, tests, deliveries."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from loyalwallet import db
from loyalwallet.api.deps import manager
from loyalwallet.api.responses import FastJSON
from loyalwallet.merchants.actors import Actor
from loyalwallet.webhooks import service
from loyalwallet.webhooks.models import WebhookEndpoint
from loyalwallet.webhooks.schemas import WebhookIn, WebhookPatch

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])


@router.post("", status_code=201, summary="Register a URL for business events; the secret is shown once")
def create(body: WebhookIn, who: Actor = Depends(manager)) -> Response:
    with db.transaction() as session:
        endpoint, secret = service.create(session, who, body.url, body.events, body.description)
        return FastJSON({**service.view(endpoint), "secret": secret}, status_code=201)


@router.get("", summary="Webhook endpoints")
def list_(who: Actor = Depends(manager)) -> dict[str, Any]:
    from sqlalchemy import select

    with db.read() as session:
        rows = session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.merchant_id == who.merchant_id)
            .order_by(WebhookEndpoint.id)
        )
        return {"items": [service.view(e) for e in rows], "events": service.EVENT_NAMES}


@router.get("/{endpoint_id}", summary="A webhook endpoint")
def get(endpoint_id: int, who: Actor = Depends(manager)) -> dict[str, Any]:
    with db.read() as session:
        return service.view(service.get(session, who, endpoint_id))


@router.patch("/{endpoint_id}", summary="Change the URL, events or switch it on/off")
def patch(endpoint_id: int, body: WebhookPatch, who: Actor = Depends(manager)) -> dict[str, Any]:
    with db.transaction() as session:
        endpoint = service.change(session, who, endpoint_id, body.model_dump(exclude_unset=True))
        return service.view(endpoint)


@router.delete("/{endpoint_id}", status_code=204, summary="Remove an endpoint")
def delete(endpoint_id: int, who: Actor = Depends(manager)) -> Response:
    with db.transaction() as session:
        service.remove(session, who, endpoint_id)
    return Response(status_code=204)


@router.post("/{endpoint_id}/rotate-secret", summary="A new signing secret (shown once)")
def rotate(endpoint_id: int, who: Actor = Depends(manager)) -> dict[str, Any]:
    with db.transaction() as session:
        return {"secret": service.rotate_secret(session, who, endpoint_id)}


@router.post("/{endpoint_id}/test", status_code=202, summary="Send a signed `ping` event")
def test(endpoint_id: int, who: Actor = Depends(manager)) -> Response:
    with db.transaction() as session:
        service.send_test(session, who, endpoint_id)
    return FastJSON({"queued": True}, status_code=202)


@router.get("/{endpoint_id}/deliveries", summary="Recent deliveries with their status and last error")
def deliveries(
    endpoint_id: int,
    status: Literal["pending", "done", "dead"] | None = Query(None),
    limit: int = Query(50, ge=1, le=500),
    who: Actor = Depends(manager),
) -> dict[str, Any]:
    with db.read() as session:
        return {"items": service.deliveries(session, who, endpoint_id, status, limit)}
