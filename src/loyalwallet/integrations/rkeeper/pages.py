"""The owner's r_keeper page: the connection (programme, tier numbers, checks booked, the
last call and error), connect or change, a new secret, disconnect. The ExtDllHttp.ini
lines are shown once, right after connect or a new secret."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from starlette.responses import Response

from loyalwallet import db
from loyalwallet.config import get_settings
from loyalwallet.errors import DomainError, Explained, translated
from loyalwallet.integrations.rkeeper import service
from loyalwallet.programs.models import Program
from loyalwallet.text import gettext_for
from loyalwallet.web.pages import form_data, redirect, render_staff, staff_language, staff_page
from loyalwallet.web.sessions import StaffSession

router = APIRouter(include_in_schema=False)
owner = staff_page("owner")


def ini_lines(path: str) -> str:
    return (
        "[Server]\n"
        f"Address={get_settings().base_url.rstrip('/')}{path}\n"
        "GetCardInfoEx=getcardinfoex\n"
        "TransactionsEx=transactionsex\n"
    )


def _page(request: Request, who: StaffSession, ini: str | None = None, error: str | None = None) -> Response:
    with db.read() as session:
        info = service.status(session, who.merchant_id)
        programs = session.scalars(
            select(Program)
            .where(
                Program.merchant_id == who.merchant_id,
                Program.kind.in_(service.KINDS),
                Program.status == "active",
            )
            .order_by(Program.id)
        ).all()
        choices = [(p.id, p.name) for p in programs]
    info.pop("address_path", None)  # the secret's address is shown only with `ini`
    tiers = info.get("tiers") or {}
    ctx = {
        "info": info,
        "programs": choices,
        "ini": ini,
        "error": error,
        "discounts_text": "\n".join(f"{t}={n['discount']}" for t, n in tiers.items() if "discount" in n),
        "bonuses_text": "\n".join(f"{t}={n['bonus']}" for t, n in tiers.items() if "bonus" in n),
    }
    return render_staff(request, who, "rkeeper/connection.html", ctx, section="rkeeper")


@router.get("/admin/rkeeper")
def rkeeper_page(request: Request, who: StaffSession = Depends(owner)) -> Response:
    return _page(request, who)


def _numbers(text: str, key: str, into: dict[str, dict[str, int]]) -> None:
    for line in text.splitlines():
        if not line.strip():
            continue
        tier, sep, number = line.rpartition("=")
        if not sep or not tier.strip() or not number.strip().isdigit():
            raise Explained(
                "validation_error", "write one TIER=NUMBER a line, not {line!r}", line=line.strip()
            )
        into.setdefault(tier.strip(), {})[key] = int(number)


def _program(value: Any) -> int:
    try:
        return int(str(value or "").strip())
    except ValueError:
        raise Explained("validation_error", "choose the programme r_keeper serves") from None


@router.post("/admin/rkeeper")
async def rkeeper_connect(request: Request, who: StaffSession = Depends(owner)) -> Response:
    form = await form_data(request, who)
    try:
        tiers: dict[str, dict[str, int]] = {}
        _numbers(str(form.get("discounts") or ""), "discount", tiers)
        _numbers(str(form.get("bonuses") or ""), "bonus", tiers)
        with db.transaction() as session:
            row, secret = service.connect(
                session, who.merchant_id, _program(form.get("program")), tiers=tiers
            )
            merchant_id = row.merchant_id
    except DomainError as exc:
        return _page(request, who, error=translated(exc, gettext_for(staff_language(request, who))))
    if secret is None:
        return redirect("/admin/rkeeper", "r_keeper connection saved.")
    return _page(request, who, ini=ini_lines(service.base_path(merchant_id, secret)))


@router.post("/admin/rkeeper/rotate")
async def rkeeper_rotate(request: Request, who: StaffSession = Depends(owner)) -> Response:
    await form_data(request, who)
    with db.transaction() as session:
        row = service.connection(session, who.merchant_id)
        if row is None:
            return redirect("/admin/rkeeper")
        _, secret = service.connect(session, who.merchant_id, row.program_id, rotate=True)
    assert secret is not None
    return _page(request, who, ini=ini_lines(service.base_path(who.merchant_id, secret)))


@router.post("/admin/rkeeper/disconnect")
async def rkeeper_disconnect(request: Request, who: StaffSession = Depends(owner)) -> Response:
    await form_data(request, who)
    with db.transaction() as session:
        service.disconnect(session, who.merchant_id)
    return redirect("/admin/rkeeper", "r_keeper disconnected.")
