"""HTTP API of gift certificates: sell, look up, history, spend without a card, refund
such a spend, cancel, and the report. A certificate in a purchase on a card goes through
`POST /api/v1/purchases` (`certificate`, `certificate_amount`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from loyalwallet import db
from loyalwallet.api.deps import IdemKey, manager
from loyalwallet.api.deps import actor as any_actor
from loyalwallet.api.responses import idempotent
from loyalwallet.certificates import ledger, reports, service
from loyalwallet.certificates.schemas import CertificateIn, RedemptionIn, RedemptionRefundIn, VoidIn
from loyalwallet.merchants.actors import Actor

router = APIRouter(prefix="/api/v1", tags=["certificates"])


@router.post("/certificates", status_code=201, summary="Sell a gift certificate with a balance")
def sell(
    body: CertificateIn, who: Actor = Depends(any_actor), idempotency_key: str | None = IdemKey
) -> Response:
    with db.transaction() as session:
        return idempotent(*service.sell(session, who, body, idempotency_key))


@router.get("/certificates", summary="Gift certificates, newest first (codes included; contacts not)")
def list_certificates(
    status: str | None = Query(None, pattern="^(active|expired|void)$"),
    limit: int = Query(50, ge=1, le=500),
    who: Actor = Depends(manager),
) -> dict[str, Any]:
    with db.read() as session:
        return {"items": service.list_certificates(session, who, status, limit)}


@router.get("/certificates/report", summary="Sold, spent, refunded, expired and outstanding (liability)")
def report(
    since: dt.date | None = Query(None, alias="from"),
    until: dt.date | None = Query(None, alias="to"),
    who: Actor = Depends(manager),
) -> dict[str, Any]:
    with db.read() as session:
        return reports.summary(session, who.merchant_id, since, until)


@router.get("/certificates/{code}", summary="A gift certificate: balance, expiry, status")
def get_certificate(code: str, who: Actor = Depends(any_actor)) -> dict[str, Any]:
    with db.read() as session:
        return service.get(session, who, code)


@router.get("/certificates/{code}/entries", summary="A certificate's money ledger, newest first")
def certificate_entries(code: str, who: Actor = Depends(any_actor)) -> dict[str, Any]:
    with db.read() as session:
        cert = ledger.find(session, who.merchant_id, code, lock=False)
        return {"items": service.entries(session, cert)}


@router.post(
    "/certificates/{code}/redemptions", status_code=201, summary="Spend from a certificate (no loyalty card)"
)
def redeem(
    code: str, body: RedemptionIn, who: Actor = Depends(any_actor), idempotency_key: str | None = IdemKey
) -> Response:
    with db.transaction() as session:
        return idempotent(*service.redeem(session, who, code, body, idempotency_key))


@router.post(
    "/certificates/{code}/redemptions/{spend_id}/refunds",
    status_code=201,
    summary="Give a spend (or part of it) back to the certificate",
)
def refund_redemption(
    code: str,
    spend_id: int,
    body: RedemptionRefundIn | None = None,
    who: Actor = Depends(any_actor),
    idempotency_key: str | None = IdemKey,
) -> Response:
    with db.transaction() as session:
        return idempotent(
            *service.refund_redemption(
                session, who, code, spend_id, body or RedemptionRefundIn(), idempotency_key
            )
        )


@router.post("/certificates/{code}/void", summary="Cancel a certificate: what is left is written off")
def void(code: str, body: VoidIn, who: Actor = Depends(manager)) -> dict[str, Any]:
    with db.transaction() as session:
        return service.void(session, who, code, body)
