"""The analytics dashboard (the admin's home page) and the CSV exports."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from markupsafe import Markup
from sqlalchemy.orm import Session
from starlette.responses import Response, StreamingResponse

from loyalwallet import db
from loyalwallet.analytics import charts, exports
from loyalwallet.analytics import service as analytics
from loyalwallet.enrollment.channels import list_channels
from loyalwallet.merchants.service import audit, list_locations
from loyalwallet.programs.service import list_programs
from loyalwallet.text import Gettext, gettext_for
from loyalwallet.web.pages import render_staff, staff_language, staff_page
from loyalwallet.web.sessions import StaffSession

router = APIRouter(include_in_schema=False)

# Extra dashboard tiles other parts add (wiring.DASHBOARD_TILES): each is called with
# (session, merchant_id, period start, period end, gettext) and returns tiles
# {"id", "label", "value", "hint"} (text already formatted).
Tile = dict[str, str]
TILES: list[Callable[[Session, int, dt.date, dt.date, Callable[[str], str]], list[Tile]]] = []

# Blocks other parts put at the top of the dashboard (wiring.DASHBOARD_PANELS): each is
# called with (session, merchant_id) and returns (template to include, its context) or None.
Panel = tuple[str, dict[str, Any]]
PANELS: list[Callable[[Session, int], Panel | None]] = []


def _id(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


# Cards that came through no channel of the merchant's: what the dashboard calls them.
CHANNEL_LABELS = {"": "Direct link or counter", "plastic": "Plastic cards"}


def _channel_labels(
    rows: list[tuple[str, int, int]], names: dict[str, str], _: Gettext
) -> list[tuple[str, int, int | None]]:
    """The channels chart shows each channel by its name, never its slug."""
    return [(names.get(slug) or _(CHANNEL_LABELS.get(slug, slug)), n, a) for slug, n, a in rows]


@router.get("/admin")
def dashboard(
    request: Request,
    start: str | None = Query(None, alias="from", max_length=10),
    end: str | None = Query(None, alias="to", max_length=10),
    location: str | None = Query(None, max_length=12),
    program: str | None = Query(None, max_length=12),
    who: StaffSession = Depends(staff_page("manager")),
) -> Response:
    with db.read() as session:
        f = analytics.filters_for(session, who.actor, start, end, _id(location), _id(program))
        data = analytics.dashboard(session, who.actor, f)
        locations = list_locations(session, who.merchant_id)
        programs = list_programs(session, who.merchant_id, include_archived=True)
        _ = gettext_for(staff_language(request, who))
        channel_names = {c.slug: c.name for c in list_channels(session, who.merchant_id, None, archived=True)}
        tiles = [t for tile in TILES for t in tile(session, who.merchant_id, f.period.start, f.period.end, _)]
        panels = [p for panel in PANELS if (p := panel(session, who.merchant_id)) is not None]
    fmt = {"day": "%d.%m", "week": "%d.%m", "month": "%m.%Y"}[data.bucket]
    trend_svg = charts.bars_and_line(
        [p.start.strftime(fmt) for p in data.trend],
        [p.purchases for p in data.trend],
        [None if p.avg_check is None else p.avg_check / 100 for p in data.trend],
        bar_name=_("Purchases"),
        line_name=_("Average check"),
    )
    return render_staff(
        request,
        who,
        "admin/dashboard.html",
        {
            "d": data,
            "f": f,
            "tiles": tiles,
            "panels": panels,
            "locations": locations,
            "programs": programs,
            "trend_svg": Markup(trend_svg),
            "channels_svg": Markup(
                charts.hbars(_channel_labels(data.issued_by("channel"), channel_names, _))
            ),
            "heat": charts.heat_class,
            "query": request.url.query,
            "updated_at": data.updated_at.astimezone(zoneinfo.ZoneInfo(f.period.tz)).strftime("%H:%M"),
            "guests_live": data.guests_live,
            "as_of": data.guests_as_of.astimezone(zoneinfo.ZoneInfo(f.period.tz)).strftime("%H:%M")
            if data.guests_as_of
            else "",
        },
        section="dashboard",
    )


@router.get("/admin/export/guests.csv")
def export_guests(
    program: str | None = Query(None, max_length=12),
    who: StaffSession = Depends(staff_page("manager")),
) -> Response:
    with db.transaction() as session:
        merchant_tz = analytics.get_merchant(session, who.merchant_id).timezone
        audit(session, who.actor, "guests.export", "merchant", who.merchant_id, {"program_id": _id(program)})
    return StreamingResponse(
        exports.guests_csv(who.merchant_id, merchant_tz, _id(program)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="guests.csv"', "Cache-Control": "no-store"},
    )


@router.get("/admin/export/purchases.csv")
def export_purchases(
    start: str | None = Query(None, alias="from", max_length=10),
    end: str | None = Query(None, alias="to", max_length=10),
    location: str | None = Query(None, max_length=12),
    program: str | None = Query(None, max_length=12),
    who: StaffSession = Depends(staff_page("manager")),
) -> Response:
    with db.read() as session:
        f = analytics.filters_for(session, who.actor, start, end, _id(location), _id(program))
    name = f"purchases-{f.period.start}-{f.period.end}.csv"
    return StreamingResponse(
        exports.purchases_csv(f),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )
