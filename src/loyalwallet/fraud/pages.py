"""Admin pages of anti-fraud: the alert list, the rules (owner) and Telegram (owner)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from starlette.responses import Response

from loyalwallet import db
from loyalwallet.errors import DomainError
from loyalwallet.fraud import linking, service
from loyalwallet.fraud import rules as fr
from loyalwallet.fraud.models import Alert
from loyalwallet.web.pages import form_data, merchant_of, redirect, render_staff, staff_page
from loyalwallet.web.sessions import StaffSession

router = APIRouter(include_in_schema=False)

# The threshold field(s) of each rule, as the form shows them.
FIELDS = {
    "max_accrual_per_day": ("points",),
    "max_redemption_per_day": ("points",),
    "max_purchases_per_hour": ("count",),
    "own_card": (),
    "refund_window": ("days",),
    "refund_manager_only": (),
    "large_redemption": ("points",),
    "cashier_burst": ("operations", "minutes"),
    "max_certificate_spend_per_day": ("amount",),  # minor units (kopecks)
}


def _page(request: Request, who: StaffSession, link: dict[str, Any] | None = None) -> Response:
    merchant = merchant_of(who)
    with db.read() as session:
        alerts = [
            service.alert_view(a)
            for a in session.scalars(
                select(Alert).where(Alert.merchant_id == who.merchant_id).order_by(Alert.id.desc()).limit(200)
            )
        ]
        link_status = linking.status(session, who.merchant_id)
    ctx = {
        "alerts": alerts,
        "rules": service.rules_of(merchant).model_dump(mode="json"),
        "fields": FIELDS,
        "titles": service.RULE_TITLES,
        "telegram": service.telegram_view(merchant),
        # A fresh deep link is shown on this answer only (the code is kept hashed).
        "link": link,
        "link_status": link_status["status"],
    }
    return render_staff(request, who, "fraud/alerts.html", ctx, section="alerts", merchant=merchant)


@router.get("/admin/alerts")
def alerts_page(request: Request, who: StaffSession = Depends(staff_page("manager"))) -> Response:
    return _page(request, who)


@router.post("/admin/alerts/telegram/link")
async def telegram_link(request: Request, who: StaffSession = Depends(staff_page("owner"))) -> Response:
    await form_data(request, who)
    username = linking.bot_username(who.merchant_id)
    with db.transaction() as session:
        link = linking.start(session, who.actor, username)
    return _page(request, who, link)


@router.post("/admin/alerts/telegram/check")
async def telegram_check(request: Request, who: StaffSession = Depends(staff_page("owner"))) -> Response:
    await form_data(request, who)
    state = linking.check(who.actor)["status"]
    if state == "linked":
        return redirect("/admin/alerts", "Telegram is linked: alerts will come to this chat.")
    if state == "expired":
        return redirect("/admin/alerts", "The link has expired: make a new one.", "error")
    return redirect("/admin/alerts", "Not yet: open the link in Telegram and press Start.", "error")


@router.post("/admin/alerts/{alert_id}/ack")
async def ack(
    alert_id: int, request: Request, who: StaffSession = Depends(staff_page("manager"))
) -> Response:
    await form_data(request, who)
    with db.transaction() as session:
        service.acknowledge(session, who.actor, alert_id)
    return redirect("/admin/alerts")


@router.post("/admin/alerts/rules")
async def rules_post(request: Request, who: StaffSession = Depends(staff_page("owner"))) -> Response:
    form = await form_data(request, who)
    raw: dict[str, Any] = {}
    for name in fr.RULE_NAMES:
        if f"{name}.action" not in form:
            continue  # a rule the page did not show (a page loaded before an upgrade) stays as it is
        rule: dict[str, Any] = {"action": form.get(f"{name}.action") or "off"}
        for field in FIELDS[name]:
            value = form.get(f"{name}.{field}")
            if not isinstance(value, str) or not value.strip().isdigit():
                raise DomainError("validation_error", f"{name}: {field} must be a whole number", field=name)
            rule[field] = int(value)
        raw[name] = rule
    with db.transaction() as session:
        service.set_rules(session, who.actor, raw)
    return redirect("/admin/alerts", "Saved.")


@router.post("/admin/alerts/telegram")
async def telegram_post(request: Request, who: StaffSession = Depends(staff_page("owner"))) -> Response:
    form = await form_data(request, who)
    changes: dict[str, Any] = {
        "chat_id": str(form.get("chat_id") or "").strip() or None,
        "alerts": form.get("alerts") == "on",
        "digest": form.get("digest") == "on",
    }
    hour = str(form.get("digest_hour") or "9").strip()
    if not hour.isdigit() or not 0 <= int(hour) <= 23:
        raise DomainError("validation_error", "the digest hour is 0..23", field="digest_hour")
    changes["digest_hour"] = int(hour)
    token = str(form.get("bot_token") or "").strip()
    if token:
        from loyalwallet.fraud.schemas import TelegramIn

        try:
            TelegramIn(bot_token=token)
        except Exception:
            raise DomainError(
                "validation_error", "this is not a bot token from @BotFather", field="bot_token"
            ) from None
        changes["bot_token"] = token
    with db.transaction() as session:
        merchant = service.set_telegram(session, who.actor, changes)
        if form.get("action") == "test" and not service.send_telegram(
            session, merchant, f"✅ loyalwallet: {merchant.name}"
        ):
            raise DomainError("conflict", "set a chat id first (and a bot token, unless the server has one)")
    return redirect("/admin/alerts", "Saved.")
