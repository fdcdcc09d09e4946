"""HTTP API of segments, push campaigns, triggers, offers and coupons (manager and owner;
a cashier may look a coupon up)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from sqlalchemy import select

from loyalwallet import db
from loyalwallet.api.deps import actor as any_actor
from loyalwallet.api.deps import manager
from loyalwallet.api.responses import FastJSON
from loyalwallet.campaigns import offers, printing, segments, service, triggers
from loyalwallet.campaigns.models import CouponBatch, Offer, Trigger
from loyalwallet.campaigns.rules import OfferSpec, normalise_code
from loyalwallet.campaigns.schemas import (
    BatchIn,
    CampaignIn,
    CampaignPatch,
    IssueIn,
    OfferPatch,
    RevokeIn,
    ScheduleIn,
    SegmentIn,
    TriggerIn,
    TriggerPatch,
    campaign_fields,
)
from loyalwallet.cards.book import get_card
from loyalwallet.cards.models import Card, Coupon
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.service import get_merchant

router = APIRouter(prefix="/api/v1", tags=["campaigns"])


# --- segments --------------------------------------------------------------------------


@router.post("/segments/preview", summary="How many guests a segment reaches now")
def preview(body: SegmentIn, who: Actor = Depends(manager)) -> dict[str, Any]:
    with db.read() as session:
        return service.preview(session, who, body.segment.model_dump(mode="json", exclude_none=True))


@router.get("/segments/rfm", summary="Guests per RFM segment")
def rfm(who: Actor = Depends(manager)) -> dict[str, Any]:
    with db.read() as session:
        return {"segments": segments.rfm_counts(session, who.merchant_id)}


# --- campaigns -------------------------------------------------------------------------


@router.post("/campaigns", status_code=201, summary="Create a campaign (send_now or scheduled_at to send)")
def create_campaign(body: CampaignIn, who: Actor = Depends(manager)) -> Response:
    with db.transaction() as session:
        fields = campaign_fields(body)
        c = service.create(session, who, fields)
        return FastJSON(service.view(session, c), status_code=201)


@router.get("/campaigns", summary="Campaigns, newest first")
def list_campaigns(
    status: Literal["draft", "scheduled", "sending", "sent", "cancelled", "failed"] | None = Query(None),
    limit: int = Query(100, ge=1, le=500),
    who: Actor = Depends(manager),
) -> dict[str, Any]:
    with db.read() as session:
        return {"items": [service.view(session, c) for c in service.list_(session, who, status, limit)]}


@router.get("/campaigns/{campaign_id}", summary="A campaign with delivery stats and its effect")
def get_campaign(campaign_id: int, who: Actor = Depends(manager)) -> dict[str, Any]:
    with db.read() as session:
        return service.view(session, service.get(session, who, campaign_id), detailed=True)


@router.patch("/campaigns/{campaign_id}", summary="Change a draft or scheduled campaign")
def patch_campaign(campaign_id: int, body: CampaignPatch, who: Actor = Depends(manager)) -> dict[str, Any]:
    with db.transaction() as session:
        return service.view(session, service.change(session, who, campaign_id, campaign_fields(body)))


@router.post("/campaigns/{campaign_id}/send", summary="Send now")
def send_campaign(campaign_id: int, who: Actor = Depends(manager)) -> dict[str, Any]:
    with db.transaction() as session:
        return service.view(session, service.send(session, who, campaign_id))


@router.post("/campaigns/{campaign_id}/schedule", summary="Send at a set time")
def schedule_campaign(campaign_id: int, body: ScheduleIn, who: Actor = Depends(manager)) -> dict[str, Any]:
    with db.transaction() as session:
        return service.view(session, service.schedule(session, who, campaign_id, body.scheduled_at))


@router.post(
    "/campaigns/{campaign_id}/cancel", summary="Cancel a scheduled campaign or the rest of a sending one"
)
def cancel_campaign(campaign_id: int, who: Actor = Depends(manager)) -> dict[str, Any]:
    with db.transaction() as session:
        return service.view(session, service.cancel(session, who, campaign_id))


@router.get("/campaigns/{campaign_id}/recipients", summary="Who got it (or is in the holdout group)")
def campaign_recipients(
    campaign_id: int,
    status: Literal["pending", "sent", "failed", "skipped", "holdout"] | None = Query(None),
    limit: int = Query(200, ge=1, le=5000),
    who: Actor = Depends(manager),
) -> dict[str, Any]:
    with db.read() as session:
        return {"items": service.recipients(session, who, campaign_id, status, limit)}


# --- triggers --------------------------------------------------------------------------


@router.post("/triggers", status_code=201, summary="Create an automatic trigger")
def create_trigger(body: TriggerIn, who: Actor = Depends(manager)) -> Response:
    with db.transaction() as session:
        t = triggers.create(
            session, who, body.kind, body.name or "", body.params, body.program_id, body.enabled
        )
        return FastJSON(triggers.view(session, t), status_code=201)


@router.get("/triggers", summary="Triggers (archived ones only when asked)")
def list_triggers(
    include_archived: bool = Query(False, description="Also the archived (deleted) triggers"),
    who: Actor = Depends(manager),
) -> dict[str, Any]:
    with db.read() as session:
        stmt = select(Trigger).where(Trigger.merchant_id == who.merchant_id)
        if not include_archived:
            stmt = stmt.where(Trigger.archived_at.is_(None))
        rows = session.scalars(stmt.order_by(Trigger.id))
        return {"items": [triggers.view(session, t) for t in rows]}


@router.get("/triggers/{trigger_id}", summary="A trigger and how often it fired")
def get_trigger(trigger_id: int, who: Actor = Depends(manager)) -> dict[str, Any]:
    with db.read() as session:
        return triggers.view(session, triggers.get(session, who, trigger_id))


@router.patch("/triggers/{trigger_id}", summary="Change or switch a trigger on/off")
def patch_trigger(trigger_id: int, body: TriggerPatch, who: Actor = Depends(manager)) -> dict[str, Any]:
    with db.transaction() as session:
        t = triggers.change(session, who, trigger_id, body.model_dump(exclude_unset=True))
        return triggers.view(session, t)


@router.delete(
    "/triggers/{trigger_id}",
    status_code=204,
    summary="Archive a trigger: it never fires again; who got what stays in its history",
)
def delete_trigger(trigger_id: int, who: Actor = Depends(manager)) -> Response:
    with db.transaction() as session:
        triggers.remove(session, who, trigger_id)
    return Response(status_code=204)


@router.post("/triggers/{trigger_id}/restore", summary="Bring an archived trigger back (switched off)")
def restore_trigger(trigger_id: int, who: Actor = Depends(manager)) -> dict[str, Any]:
    with db.transaction() as session:
        return triggers.view(session, triggers.restore(session, who, trigger_id))


@router.post("/triggers/{trigger_id}/run", status_code=202, summary="Run a scheduled trigger now")
def run_trigger(trigger_id: int, who: Actor = Depends(manager)) -> Response:
    with db.transaction() as session:
        triggers.run_now(session, who, trigger_id)
    return FastJSON({"queued": True}, status_code=202)


# --- offers and coupons ----------------------------------------------------------------


@router.post("/offers", status_code=201, summary="Create an offer (a coupon template)")
def create_offer(body: OfferSpec, who: Actor = Depends(manager)) -> Response:
    with db.transaction() as session:
        offer = offers.create_offer(session, who, body.model_dump())
        return FastJSON(offers.view(offer, offers.stats(session, offer)), status_code=201)


@router.get("/offers", summary="Offers")
def list_offers(
    status: Literal["active", "archived"] | None = Query(None), who: Actor = Depends(manager)
) -> dict[str, Any]:
    with db.read() as session:
        stmt = select(Offer).where(Offer.merchant_id == who.merchant_id)
        if status:
            stmt = stmt.where(Offer.status == status)
        return {
            "items": [
                offers.view(o, offers.stats(session, o)) for o in session.scalars(stmt.order_by(Offer.id))
            ]
        }


@router.get("/offers/{offer_id}", summary="An offer with its numbers")
def get_offer(offer_id: int, who: Actor = Depends(manager)) -> dict[str, Any]:
    with db.read() as session:
        offer = offers.get_offer(session, who.merchant_id, offer_id)
        return offers.view(offer, offers.stats(session, offer))


@router.patch("/offers/{offer_id}", summary="Change or archive an offer (issued coupons keep their terms)")
def patch_offer(offer_id: int, body: OfferPatch, who: Actor = Depends(manager)) -> dict[str, Any]:
    with db.transaction() as session:
        offer = offers.update_offer(session, who, offer_id, body.model_dump(exclude_unset=True))
        return offers.view(offer, offers.stats(session, offer))


@router.post("/offers/{offer_id}/issue", status_code=201, summary="Give a guest's card a coupon")
def issue(offer_id: int, body: IssueIn, who: Actor = Depends(manager)) -> Response:
    with db.transaction() as session:
        coupon, card = offers.issue_to_card(session, who, offer_id, body.card)
        return FastJSON(offers.coupon_view(coupon, card.code), status_code=201)


def _batch_view(session: Any, batch: CouponBatch) -> dict[str, Any]:
    pages = -(-batch.count // printing.PDF_PART)
    return {
        "id": batch.id,
        "offer_id": batch.offer_id,
        "name": batch.name,
        "count": batch.count,
        "created_at": batch.created_at.isoformat(),
        "csv_url": f"/api/v1/coupon-batches/{batch.id}/codes.csv",
        "pdf_urls": [f"/api/v1/coupon-batches/{batch.id}/codes.pdf?part={n}" for n in range(1, pages + 1)],
    }


@router.post("/offers/{offer_id}/batches", status_code=201, summary="Printable anonymous codes (CSV and PDF)")
def create_batch(offer_id: int, body: BatchIn, who: Actor = Depends(manager)) -> Response:
    with db.transaction() as session:
        batch = offers.create_batch(session, who, offer_id, body.count, body.name)
        return FastJSON(_batch_view(session, batch), status_code=201)


@router.get("/coupon-batches/{batch_id}", summary="A batch of printable codes")
def get_batch(batch_id: int, who: Actor = Depends(manager)) -> dict[str, Any]:
    with db.read() as session:
        return _batch_view(session, offers.get_batch(session, who.merchant_id, batch_id))


@router.get("/coupon-batches/{batch_id}/codes.csv", summary="The codes as CSV")
def batch_csv(batch_id: int, who: Actor = Depends(manager)) -> Response:
    with db.read() as session:
        batch = offers.get_batch(session, who.merchant_id, batch_id)
        merchant = get_merchant(session, who.merchant_id)
        data = printing.csv_bytes(offers.batch_coupons(session, batch), merchant.currency)
    return Response(
        data,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="coupons-{batch_id}.csv"'},
    )


@router.get("/coupon-batches/{batch_id}/codes.pdf", summary="The codes to print and cut (A4, 24 a page)")
def batch_pdf(batch_id: int, part: int = Query(1, ge=1), who: Actor = Depends(manager)) -> Response:
    with db.read() as session:
        batch = offers.get_batch(session, who.merchant_id, batch_id)
        merchant = get_merchant(session, who.merchant_id)
        coupons = offers.batch_coupons(session, batch)[
            (part - 1) * printing.PDF_PART : part * printing.PDF_PART
        ]
    data = printing.pdf_bytes(
        coupons,
        merchant_name=merchant.name,
        currency=merchant.currency,
        tz_name=merchant.timezone,
        lang=merchant.locale,
    )
    return Response(
        data,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="coupons-{batch_id}-{part}.pdf"'},
    )


@router.get("/coupons", summary="Coupons (of an offer, a batch or a card)")
def list_coupons(
    offer_id: int | None = Query(None),
    batch_id: int | None = Query(None),
    card: str | None = Query(None, max_length=64),
    status: Literal["available", "used", "revoked"] | None = Query(None),
    limit: int = Query(100, ge=1, le=1000),
    who: Actor = Depends(manager),
) -> dict[str, Any]:
    with db.read() as session:
        stmt = (
            select(Coupon, Card.code)
            .outerjoin(Card, Card.id == Coupon.card_id)
            .where(Coupon.merchant_id == who.merchant_id)
        )
        if offer_id is not None:
            stmt = stmt.where(Coupon.offer_id == offer_id)
        if batch_id is not None:
            stmt = stmt.where(Coupon.source == "anonymous", Coupon.source_id == batch_id)
        if card is not None:
            c, _ = get_card(session, who.merchant_id, card)
            stmt = stmt.where(Coupon.card_id == c.id)
        if status is not None:
            stmt = stmt.where(Coupon.status == status)
        rows = session.execute(stmt.order_by(Coupon.id.desc()).limit(limit)).all()
        return {"items": [offers.coupon_view(coupon, code) for coupon, code in rows]}


@router.get("/coupons/{code}", summary="Check a coupon code (any role): is it usable now?")
def get_coupon(code: str, who: Actor = Depends(any_actor)) -> dict[str, Any]:
    with db.read() as session:
        coupon = offers.get_coupon(session, who.merchant_id, code)
        card_code = (
            session.scalar(select(Card.code).where(Card.id == coupon.card_id)) if coupon.card_id else None
        )
        return offers.coupon_view(coupon, card_code)


@router.post("/coupons/{code}/revoke", summary="Revoke a coupon")
def revoke_coupon(code: str, body: RevokeIn | None = None, who: Actor = Depends(manager)) -> dict[str, Any]:
    with db.transaction() as session:
        coupon = offers.revoke(session, who, normalise_code(code), body.reason if body else None)
        return offers.coupon_view(coupon)
