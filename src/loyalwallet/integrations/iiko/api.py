"""The iiko order-webhook receiver: POST /integrations/iiko/{merchant_id}/webhook."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from loyalwallet import db
from loyalwallet.errors import DomainError
from loyalwallet.integrations.iiko import orders

router = APIRouter(tags=["iiko"])


@router.post("/integrations/iiko/{merchant_id}/webhook", include_in_schema=False)
async def iiko_webhook(merchant_id: int, request: Request) -> JSONResponse:
    raw = await request.body()
    try:
        events = json.loads(raw or b"null")
    except ValueError:
        raise DomainError("bad_request", "the body is not JSON") from None
    with db.transaction() as session:
        result = orders.receive(session, merchant_id, request.headers.get("authorization"), events)
    return JSONResponse(result)
