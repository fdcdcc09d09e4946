"""Admin pages of anti-fraud: the alert list, the rules (owner) and Telegram (owner)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from starlette.responses import Response

from loyalwallet import db
from loyalwallet.errors import DomainError, Explained, translated
from loyalwallet.fraud import linking, service
from loyalwallet.fraud import rules as fr
from loyalwallet.fraud import telegram_check as tg_check
from loyalwallet.fraud.models import Alert
from loyalwallet.text import gettext_for
from loyalwallet.web.pages import form_data, merchant_of, redirect, render_staff, staff_language, staff_page
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


def _page(
    request: Request,
    who: StaffSession,
    link: dict[str, Any] | None = None,
    *,
    telegram_form: dict[str, Any] | None = None,
    telegram_error: str | None = None,
    telegram_sent: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    merchant = merchant_of(who)
    with db.read() as session:
        lang = staff_language(request, who)
        alerts = [
            {**service.alert_view(a), "message": service.message_in(lang, a)}
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
        # What the owner typed, when the form comes back with an error (nothing is lost).
        "telegram": {**service.telegram_view(merchant), **(telegram_form or {})},
        "telegram_error": telegram_error,
        "telegram_sent": telegram_sent,
        "telegram_test_text": tg_check.test_text(merchant),
        # A fresh deep link is shown on this answer only (the code is kept hashed).
        "link": link,
        "link_status": link_status["status"],
    }
    return render_staff(
        request, who, "fraud/alerts.html", ctx, section="alerts", merchant=merchant, status=status
    )


@router.get("/admin/alerts")
def alerts_page(request: Request, who: StaffSession = Depends(staff_page("manager"))) -> Response:
    return _page(request, who)


@router.post("/admin/alerts/telegram/link")
async def telegram_link(request: Request, who: StaffSession = Depends(staff_page("owner"))) -> Response:
    await form_data(request, who)
    try:
        username = linking.bot_username(who.merchant_id)
    except DomainError as exc:
        return _telegram_failed(request, who, exc, None)
    with db.transaction() as session:
        link = linking.start(session, who.actor, username)
    return _page(request, who, link)


@router.post("/admin/alerts/telegram/check")
async def telegram_check(request: Request, who: StaffSession = Depends(staff_page("owner"))) -> Response:
    await form_data(request, who)
    try:
        state = linking.check(who.actor)["status"]
    except DomainError as exc:
        return _telegram_failed(request, who, exc, None)
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
                raise Explained(
                    "validation_error",
                    "{name}: {field} must be a whole number",
                    name=name,
                    field=field,
                    extra={"field": name},
                )
            rule[field] = int(value)
        raw[name] = rule
    with db.transaction() as session:
        service.set_rules(session, who.actor, raw)
    return redirect("/admin/alerts", "Saved.")


def _telegram_failed(
    request: Request,
    who: StaffSession,
    exc: DomainError,
    typed: dict[str, Any] | None,
    *,
    saved: bool = False,
) -> Response:
    _ = gettext_for(staff_language(request, who))
    message = translated(exc, _)
    if saved:
        message = _("Saved, but the test message was not sent: {reason}").format(reason=message)
    return _page(request, who, telegram_form=typed, telegram_error=message, status=exc.status)


@router.post("/admin/alerts/telegram")
async def telegram_post(request: Request, who: StaffSession = Depends(staff_page("owner"))) -> Response:
    form = await form_data(request, who)
    token = str(form.get("bot_token") or "").strip()
    hour = str(form.get("digest_hour") or "9").strip()
    typed: dict[str, Any] = {
        "chat_id": str(form.get("chat_id") or "").strip() or None,
        "alerts": form.get("alerts") == "on",
        "digest": form.get("digest") == "on",
        "digest_hour": hour,
        "bot_token": token,
    }
    saved = False
    try:
        if not hour.isdigit() or not 0 <= int(hour) <= 23:
            raise Explained("validation_error", "the digest hour is a whole number from 0 to 23")
        changes: dict[str, Any] = {
            "chat_id": typed["chat_id"],
            "alerts": typed["alerts"],
            "digest": typed["digest"],
            "digest_hour": int(hour),
        }
        from loyalwallet.fraud.schemas import TelegramIn

        if typed["chat_id"]:
            try:
                TelegramIn(chat_id=typed["chat_id"])
            except Exception:
                raise Explained(
                    "validation_error", "the chat id is a number (negative for a group) or @channelname"
                ) from None
        if token:
            try:
                TelegramIn(bot_token=token)
            except Exception:
                raise Explained(
                    "validation_error",
                    "this is not a bot token from @BotFather (it looks like 123456789:AA…)",
                ) from None
            changes["bot_token"] = token
        with db.transaction() as session:
            merchant = service.set_telegram(session, who.actor, changes)
        saved = True
        if form.get("action") != "test":
            return redirect("/admin/alerts", "Saved.")
        sent = tg_check.send_test(merchant)
    except DomainError as exc:
        return _telegram_failed(request, who, exc, typed, saved=saved)
    return _page(request, who, telegram_form={**typed, "bot_token": ""}, telegram_sent=sent)
