"""Admin pages of campaigns, triggers and coupons (offers and printed codes).

Thin forms over the same services as the JSON API (campaigns/api.py): what a page
posts is turned into the API's shapes, so the rules and errors are the API's.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from starlette.datastructures import FormData
from starlette.responses import Response

from loyalwallet import db
from loyalwallet.campaigns import offers, service, triggers
from loyalwallet.campaigns.models import CouponBatch, Offer, Trigger
from loyalwallet.campaigns.rules import RFM_SEGMENTS, TRIGGER_KINDS
from loyalwallet.errors import DomainError, Explained
from loyalwallet.merchants.service import merchant_tz
from loyalwallet.programs.models import Program
from loyalwallet.web.pages import form_data, merchant_of, redirect, render_staff, staff_page
from loyalwallet.web.sessions import StaffSession

router = APIRouter(include_in_schema=False)
manager = staff_page("manager")


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _int(form: FormData, name: str) -> int | None:
    value = _text(form, name)
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise Explained(
            "validation_error", "{name}: a whole number is needed", name=name, extra={"field": name}
        ) from None


def _programs(session: Any, merchant_id: int) -> list[Program]:
    return list(
        session.scalars(select(Program).where(Program.merchant_id == merchant_id).order_by(Program.id))
    )


def _offers(session: Any, merchant_id: int) -> list[Offer]:
    return list(
        session.scalars(
            select(Offer).where(Offer.merchant_id == merchant_id, Offer.status == "active").order_by(Offer.id)
        )
    )


def _segment(form: FormData) -> dict[str, Any]:
    """The segment fields of the campaign form -> a Segment spec."""
    spec: dict[str, Any] = {}
    if program := _int(form, "program_id"):
        spec["program_ids"] = [program]
    if tier := _text(form, "tier"):
        spec["tiers"] = [tier]
    if (days := _int(form, "lapsed_days")) is not None:
        spec["last_visit_days"] = {"min": days}
    if (days := _int(form, "recent_days")) is not None:
        spec["last_visit_days"] = {**spec.get("last_visit_days", {}), "max": days}
    if (days := _int(form, "birthday_days")) is not None:
        spec["birthday_in_days"] = days
    if (visits := _int(form, "min_visits")) is not None:
        spec["visits"] = {"min": visits}
    if channel := _text(form, "channel"):
        spec["channels"] = [channel]
    rfm = [v for v in form.getlist("rfm") if isinstance(v, str) and v in RFM_SEGMENTS]
    if rfm:
        spec["rfm"] = rfm
    return spec


# --- campaigns -------------------------------------------------------------------------


@router.get("/admin/campaigns")
def campaigns_page(request: Request, who: StaffSession = Depends(manager)) -> Response:
    with db.read() as session:
        items = [service.view(session, c, detailed=True) for c in service.list_(session, who.actor, None, 50)]
        ctx = {
            "campaigns": items,
            "programs": _programs(session, who.merchant_id),
            "offers": _offers(session, who.merchant_id),
            "rfm_names": RFM_SEGMENTS,
            "form": {},
            "count": None,
        }
    return render_staff(request, who, "campaigns/list.html", ctx, section="campaigns")


@router.post("/admin/campaigns")
async def campaigns_post(request: Request, who: StaffSession = Depends(manager)) -> Response:
    form = await form_data(request, who)
    segment = _segment(form)
    if _text(form, "action") == "count":
        with db.read() as session:
            count = service.preview(session, who.actor, segment)
            ctx = {
                "campaigns": [
                    service.view(session, c, detailed=True) for c in service.list_(session, who.actor)
                ],
                "programs": _programs(session, who.merchant_id),
                "offers": _offers(session, who.merchant_id),
                "rfm_names": RFM_SEGMENTS,
                "form": {k: form.get(k) for k in form if k != "csrf"} | {"rfm": form.getlist("rfm")},
                "count": count,
            }
        return render_staff(request, who, "campaigns/list.html", ctx, section="campaigns")
    body: dict[str, Any] = {
        "name": _text(form, "name"),
        "header": _text(form, "header"),
        "body": _text(form, "body"),
        "points": _int(form, "points") or 0,
        "offer_id": _int(form, "offer_id"),
        "holdout_pct": _int(form, "holdout_pct") or 0,
        "segment": segment,
        "channel": _text(form, "send_channel") or "wallet",
    }
    if (cap := _int(form, "cap_messages")) is not None:
        body["cap_messages"] = cap
    if (rubles := _int(form, "cap_cost_rub")) is not None:
        body["cap_cost"] = rubles * 100
    when = _text(form, "when")
    merchant = merchant_of(who)
    if when == "now":
        body["send_now"] = True
    elif when == "later":
        raw = _text(form, "scheduled_at")
        try:
            local = dt.datetime.fromisoformat(raw)
        except ValueError:
            raise DomainError(
                "validation_error", "pick the date and time to send", field="scheduled_at"
            ) from None
        body["scheduled_at"] = local.replace(tzinfo=merchant_tz(merchant))
    with db.transaction() as session:
        c = service.create(session, who.actor, body)
        campaign_id = c.id
    return redirect(f"/admin/campaigns/{campaign_id}", "Saved.")


@router.get("/admin/campaigns/{campaign_id}")
def campaign_page(campaign_id: int, request: Request, who: StaffSession = Depends(manager)) -> Response:
    with db.read() as session:
        c = service.view(session, service.get(session, who.actor, campaign_id), detailed=True)
        recipients = service.recipients(session, who.actor, campaign_id, None, 50)
    return render_staff(
        request, who, "campaigns/detail.html", {"c": c, "recipients": recipients}, section="campaigns"
    )


@router.post("/admin/campaigns/{campaign_id}/{action}")
async def campaign_action(
    campaign_id: int, action: str, request: Request, who: StaffSession = Depends(manager)
) -> Response:
    await form_data(request, who)
    with db.transaction() as session:
        if action == "send":
            service.send(session, who.actor, campaign_id)
        elif action == "cancel":
            service.cancel(session, who.actor, campaign_id)
        else:
            raise DomainError("not_found", "no such action")
    return redirect(f"/admin/campaigns/{campaign_id}", "Saved.")


# --- triggers --------------------------------------------------------------------------


@router.get("/admin/triggers")
def triggers_page(request: Request, who: StaffSession = Depends(manager)) -> Response:
    with db.read() as session:
        rows = session.scalars(
            select(Trigger)
            .where(Trigger.merchant_id == who.merchant_id, Trigger.archived_at.is_(None))
            .order_by(Trigger.id)
        )
        ctx = {
            "triggers": [triggers.view(session, t) for t in rows],
            "programs": _programs(session, who.merchant_id),
            "offers": _offers(session, who.merchant_id),
            "kinds": TRIGGER_KINDS,
        }
    return render_staff(request, who, "campaigns/triggers.html", ctx, section="triggers")


def _trigger_params(form: FormData, kind: str) -> dict[str, Any]:
    params: dict[str, Any] = {"message": {"header": _text(form, "header"), "body": _text(form, "body")}}
    if (points := _int(form, "points")) is not None:
        params["points"] = points
    if offer := _int(form, "offer_id"):
        params["offer_id"] = offer
    if send_at := _text(form, "send_at"):
        params["send_at"] = send_at
    days = _int(form, "days")
    if kind in ("birthday", "points_expiring", "subscription_ending") and days is not None:
        params["days_before"] = days
    if kind == "lapsed" and days is not None:
        params["days"] = days
    if kind == "happy_hour":
        params["weekdays"] = [int(v) for v in form.getlist("weekdays") if isinstance(v, str) and v.isdigit()]
        params["start"], params["end"] = _text(form, "start"), _text(form, "end")
    return params


@router.post("/admin/triggers")
async def triggers_post(request: Request, who: StaffSession = Depends(manager)) -> Response:
    form = await form_data(request, who)
    kind = _text(form, "kind")
    with db.transaction() as session:
        triggers.create(
            session,
            who.actor,
            kind,
            _text(form, "name"),
            _trigger_params(form, kind),
            _int(form, "program_id"),
        )
    return redirect("/admin/triggers", "Saved.")


@router.post("/admin/triggers/{trigger_id}/{action}")
async def trigger_action(
    trigger_id: int, action: str, request: Request, who: StaffSession = Depends(manager)
) -> Response:
    await form_data(request, who)
    with db.transaction() as session:
        if action in ("enable", "disable"):
            triggers.change(session, who.actor, trigger_id, {"enabled": action == "enable"})
        elif action == "run":
            triggers.run_now(session, who.actor, trigger_id)
        elif action == "delete":
            triggers.remove(session, who.actor, trigger_id)
        else:
            raise DomainError("not_found", "no such action")
    return redirect("/admin/triggers", "Saved.")


# --- offers and printed codes ----------------------------------------------------------


@router.get("/admin/coupons")
def coupons_page(request: Request, who: StaffSession = Depends(manager)) -> Response:
    with db.read() as session:
        rows = session.scalars(
            select(Offer).where(Offer.merchant_id == who.merchant_id).order_by(Offer.id.desc())
        )
        items = [offers.view(o, offers.stats(session, o)) for o in rows]
        batches = list(
            session.scalars(
                select(CouponBatch)
                .where(CouponBatch.merchant_id == who.merchant_id)
                .order_by(CouponBatch.id.desc())
                .limit(50)
            )
        )
        ctx = {"offers": items, "batches": batches, "programs": _programs(session, who.merchant_id)}
    return render_staff(request, who, "campaigns/coupons.html", ctx, section="coupons")


@router.post("/admin/coupons")
async def coupons_post(request: Request, who: StaffSession = Depends(manager)) -> Response:
    form = await form_data(request, who)
    kind = _text(form, "kind")
    raw: dict[str, Any] = {
        "name": _text(form, "name"),
        "kind": kind,
        "program_id": _int(form, "program_id"),
        "valid_days": _int(form, "valid_days"),
        "uses_per_coupon": _int(form, "uses_per_coupon") or 1,
        "max_issued": _int(form, "max_issued"),
        "min_amount": (_int(form, "min_amount") or 0) * 100,
        "category": _text(form, "category") or None,
    }
    value = _int(form, "value")
    if kind == "percent_off":
        raw["pct"] = value
    elif kind in ("fixed_off", "free_item"):
        raw["value"] = (value or 0) * 100  # the form asks for whole currency units
    else:
        raw["value"] = value or 0
    with db.transaction() as session:
        offers.create_offer(session, who.actor, raw)
    return redirect("/admin/coupons", "Saved.")


@router.post("/admin/coupons/{offer_id}/print")
async def coupons_print(offer_id: int, request: Request, who: StaffSession = Depends(manager)) -> Response:
    form = await form_data(request, who)
    with db.transaction() as session:
        offers.create_batch(session, who.actor, offer_id, _int(form, "count") or 0, _text(form, "name"))
    return redirect("/admin/coupons", "Saved.")
