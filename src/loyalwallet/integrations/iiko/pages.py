"""The owner's iiko page: the connection, its state and last error in plain words,
connect / replace, test connection (iiko's real answer), disconnect."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from loyalwallet import db
from loyalwallet.errors import DomainError, Explained, translated
from loyalwallet.integrations.iiko import service
from loyalwallet.text import gettext_for
from loyalwallet.web.pages import form_data, redirect, render_staff, staff_language, staff_page
from loyalwallet.web.sessions import StaffSession

router = APIRouter(include_in_schema=False)
owner = staff_page("owner")


def _page(
    request: Request, who: StaffSession, answer: dict[str, Any] | None = None, error: str | None = None
) -> Response:
    with db.read() as session:
        info = service.status(session, who.merchant_id)
    ctx = {
        "info": info,
        "answer": json.dumps(answer, ensure_ascii=False, indent=2) if answer is not None else None,
        "error": error,
        "tiers_text": "\n".join(f"{k}={v}" for k, v in (info.get("tiers") or {}).items()),
    }
    return render_staff(request, who, "iiko/connection.html", ctx, section="iiko")


@router.get("/admin/iiko")
def iiko_page(request: Request, who: StaffSession = Depends(owner)) -> Response:
    return _page(request, who)


def _int(value: Any, name: str) -> int:
    try:
        return int(str(value or "").strip())
    except ValueError:
        raise Explained("validation_error", "{name} must be a card number (digits)", name=name) from None


@router.post("/admin/iiko")
async def iiko_connect(request: Request, who: StaffSession = Depends(owner)) -> Response:
    form = await form_data(request, who)
    tiers: dict[str, str] = {}
    for line in str(form.get("tiers") or "").splitlines():
        category, sep, tier = line.partition("=")
        if sep and category.strip() and tier.strip():
            tiers[category.strip()] = tier.strip()
    try:
        with db.transaction() as session:
            service.connect(
                session,
                who.merchant_id,
                str(form.get("api_login") or ""),
                card_first=_int(form.get("card_first"), "the first card number"),
                card_last=_int(form.get("card_last"), "the last card number"),
                organization_id=str(form.get("organization") or "").strip() or None,
                wallet_id=str(form.get("wallet") or "").strip() or None,
                tiers=tiers,
            )
    except DomainError as exc:
        return _page(request, who, error=translated(exc, gettext_for(staff_language(request, who))))
    return redirect("/admin/iiko", "iiko connected.")


@router.post("/admin/iiko/test")
async def iiko_test(request: Request, who: StaffSession = Depends(owner)) -> Response:
    await form_data(request, who)
    with db.transaction() as session:
        answer = service.test(session, who.merchant_id)
    return _page(request, who, answer=answer, error=None if answer.get("ok") else str(answer.get("error")))


@router.post("/admin/iiko/disconnect")
async def iiko_disconnect(request: Request, who: StaffSession = Depends(owner)) -> Response:
    await form_data(request, who)
    with db.transaction() as session:
        service.disconnect(session, who.merchant_id)
    return redirect("/admin/iiko", "iiko disconnected.")
