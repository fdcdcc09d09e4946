"""HTTP API of sending a card to its guest (CONTRACT: POST /api/v1/cards/{code}/send)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from loyalwallet import db
from loyalwallet.api.deps import actor
from loyalwallet.merchants.actors import Actor
from loyalwallet.messaging import campaign_sms, service

router = APIRouter(prefix="/api/v1", tags=["cards"])


class SendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: Literal["sms", "email", "telegram"]


@router.post(
    "/cards/{code}/send",
    status_code=202,
    summary="Send the card's link to its guest by SMS, e-mail or Telegram (queued)",
)
def send_card(code: str, body: SendIn, who: Actor = Depends(actor)) -> Any:
    with db.transaction() as session:
        result = service.send_card(session, who, code, body.channel)
    return JSONResponse(result, status_code=202)


@router.post(
    "/campaigns/{campaign_id}/sms-estimate",
    tags=["campaigns"],
    summary="What an SMS campaign would cost now (SMS.ru sms/cost); needed before sending",
)
def sms_estimate(campaign_id: int, who: Actor = Depends(actor)) -> dict[str, Any]:
    return campaign_sms.estimate(who, campaign_id)
