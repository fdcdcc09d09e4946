"""The staff report page (/admin/reports/staff): per cashier or per location, sortable
by any column (links, no script), a chart of revenue, and its CSV."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from markupsafe import Markup
from starlette.responses import Response, StreamingResponse

from loyalwallet import db
from loyalwallet.analytics import charts
from loyalwallet.feedback.queries import Filters, make_filters, visible_locations
from loyalwallet.merchants.service import list_locations, today
from loyalwallet.reports import staff as staff_report
from loyalwallet.web.pages import merchant_of, render_staff, staff_page
from loyalwallet.web.sessions import StaffSession

router = APIRouter(include_in_schema=False)


def _load(request: Request, who: StaffSession) -> tuple[list[dict[str, Any]], dict[str, Any], str, Filters]:
    q = request.query_params
    merchant = merchant_of(who)
    f = make_filters(
        merchant.timezone, today(merchant), q.get("from"), q.get("to"), location=q.get("location")
    )
    group = q.get("group") or "cashier"
    with db.read() as session:
        rows = staff_report.report(session, who.actor, f, group)
    descending = q.get("dir", "desc") != "asc"
    rows = staff_report.sort_rows(rows, q.get("sort") or "revenue", descending)
    return rows, staff_report.totals(rows), group, f


@router.get("/admin/reports/staff")
def staff_page_view(request: Request, who: StaffSession = Depends(staff_page("manager"))) -> Response:
    rows, total, group, f = _load(request, who)
    with db.read() as session:
        allowed = visible_locations(session, who.actor)
        locations = [
            loc for loc in list_locations(session, who.merchant_id) if allowed is None or loc.id in allowed
        ]
    chart = charts.hbars([(str(r["name"])[:18], int(r["revenue"]) // 100, None) for r in rows[:15]])
    q = request.query_params
    ctx = {
        "rows": rows,
        "total": total,
        "group": group,
        "filters": f,
        "columns": staff_report.COLUMNS,
        "money_columns": staff_report.MONEY,
        "sort": q.get("sort") or "revenue",
        "dir": "asc" if q.get("dir") == "asc" else "desc",
        "locations": locations,
        "chart_svg": Markup(chart),  # escaped by the chart function
        "query": request.url.query,
    }
    return render_staff(request, who, "reports/staff.html", ctx, section="staff_report")


@router.get("/admin/reports/staff.csv")
def staff_csv(request: Request, who: StaffSession = Depends(staff_page("manager"))) -> Response:
    rows, _total, group, f = _load(request, who)
    return StreamingResponse(
        staff_report.report_csv(rows, group),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="staff-{group}-{f.start}-{f.end}.csv"',
            "Cache-Control": "no-store",
        },
    )
