"""Admin pages of feedback: the dashboard (figures, chart, comments with filters), the
CSV export and the settings (owner: on/off, points for answering, review links)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from markupsafe import Markup
from starlette.responses import Response

from loyalwallet import db
from loyalwallet.analytics import charts
from loyalwallet.feedback import queries, rules, service
from loyalwallet.merchants.service import list_locations, today
from loyalwallet.text import gettext_for
from loyalwallet.web.pages import form_data, merchant_of, redirect, render_staff, staff_language, staff_page
from loyalwallet.web.sessions import StaffSession

router = APIRouter(include_in_schema=False)


def _filters(request: Request, tz: str, merchant: Any) -> queries.Filters:
    q = request.query_params
    return queries.make_filters(
        tz,
        today(merchant),
        q.get("from"),
        q.get("to"),
        location=q.get("location"),
        staff=q.get("staff"),
        score=q.get("score"),
        low_only=q.get("low") == "1",
        with_comment=q.get("commented") == "1",
    )


def _charts(figures: dict[str, Any], _: Any) -> dict[str, Markup]:
    dist = figures["overall"]["distribution"]
    # Our own SVG with every label escaped by the chart functions.
    distribution = charts.hbars([("★" * s, int(dist.get(str(s), 0)), None) for s in reversed(rules.SCORES)])
    weeks = figures["by_week"]
    trend = charts.bars_and_line(
        [w["week"][5:] for w in weeks],
        [w["count"] for w in weeks],
        [w["average"] for w in weeks],
        bar_name=_("Answers"),
        line_name=_("Average score"),
    )
    return {"distribution_svg": Markup(distribution), "trend_svg": Markup(trend)}


@router.get("/admin/feedback")
def feedback_page(request: Request, who: StaffSession = Depends(staff_page("manager"))) -> Response:
    merchant = merchant_of(who)
    f = _filters(request, merchant.timezone, merchant)
    with db.read() as session:
        figures = queries.dashboard(session, who.actor, f)
        items = queries.comments(session, who.actor, f)
        allowed = queries.visible_locations(session, who.actor)
        locations = [
            loc for loc in list_locations(session, who.merchant_id) if allowed is None or loc.id in allowed
        ]
    settings = service.settings_of(merchant)
    ctx = {
        "figures": figures,
        **_charts(figures, gettext_for(staff_language(request, who))),
        "comments": items,
        "filters": f,
        "query": request.url.query,
        "locations": locations,
        "problems": rules.PROBLEMS,
        "settings": settings.model_dump(mode="json"),
        "sites": rules.REVIEW_SITES,
    }
    return render_staff(request, who, "feedback/dashboard.html", ctx, section="feedback", merchant=merchant)


@router.get("/admin/feedback.csv")
def feedback_csv(request: Request, who: StaffSession = Depends(staff_page("manager"))) -> Response:
    merchant = merchant_of(who)
    f = _filters(request, merchant.timezone, merchant)
    with db.read() as session:
        body = "".join(queries.comments_csv(session, who.actor, f))
    name = f"feedback-{f.start}-{f.end}.csv"
    return StreamingResponse(
        iter([body]),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )


@router.post("/admin/feedback/settings")
async def settings_post(request: Request, who: StaffSession = Depends(staff_page("owner"))) -> Response:
    form = await form_data(request, who)
    points = str(form.get("reward_points") or "0").strip()
    links: dict[str, dict[str, str | None]] = {}
    with db.read() as session:
        ids = [loc.id for loc in list_locations(session, who.merchant_id)]
    for location_id in ids:
        entry = {
            site: str(form.get(f"links.{location_id}.{site}") or "").strip() or None
            for site in rules.REVIEW_SITES
        }
        if any(entry.values()):
            links[str(location_id)] = entry
    raw = {
        "enabled": form.get("enabled") == "on",
        "reward_points": int(points) if points.isdigit() else points,
        "review_links": links,
    }
    with db.transaction() as session:
        service.set_settings(session, who.actor, raw)
    return redirect("/admin/feedback", "Saved.")
