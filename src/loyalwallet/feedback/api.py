"""HTTP API of visit feedback: the dashboard's figures, the answers, the settings."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query

from loyalwallet import db
from loyalwallet.api.deps import manager, owner
from loyalwallet.feedback import queries, service
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.service import get_merchant, today

router = APIRouter(prefix="/api/v1", tags=["feedback"])


def _filters(session: Any, who: Actor, **q: Any) -> queries.Filters:
    merchant = get_merchant(session, who.merchant_id)
    return queries.make_filters(merchant.timezone, today(merchant), q.pop("start"), q.pop("end"), **q)


@router.get("/feedback/summary", summary="Average, distribution and net score, by location, cashier and week")
def summary(
    who: Actor = Depends(manager),
    start: str | None = Query(None, alias="from"),
    end: str | None = Query(None, alias="to"),
    location: str | None = None,
) -> dict[str, Any]:
    with db.read() as session:
        f = _filters(session, who, start=start, end=end, location=location)
        return queries.dashboard(session, who, f)


@router.get("/feedback", summary="Guests' answers, newest first")
def answers(
    who: Actor = Depends(manager),
    start: str | None = Query(None, alias="from"),
    end: str | None = Query(None, alias="to"),
    location: str | None = None,
    staff: str | None = None,
    score: str | None = None,
    low: bool = False,
    commented: bool = False,
) -> dict[str, Any]:
    with db.read() as session:
        f = _filters(
            session,
            who,
            start=start,
            end=end,
            location=location,
            staff=staff,
            score=score,
            low_only=low,
            with_comment=commented,
        )
        return {"items": queries.comments(session, who, f)}


@router.get("/feedback/settings", summary="Whether guests are asked, points for answering, review links")
def get_settings(who: Actor = Depends(manager)) -> dict[str, Any]:
    with db.read() as session:
        return service.settings_of(get_merchant(session, who.merchant_id)).model_dump(mode="json")


@router.put("/feedback/settings", summary="Change the feedback settings (owner); fields not given stay")
def put_settings(body: dict[str, Any] = Body(...), who: Actor = Depends(owner)) -> dict[str, Any]:
    with db.transaction() as session:
        return service.set_settings(session, who, body).model_dump(mode="json")
