"""Failed deliveries of the outbox (pushes, webhooks, SMS that gave up) and retrying them."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from starlette.responses import Response

from loyalwallet import db
from loyalwallet.errors import not_found
from loyalwallet.merchants.service import audit
from loyalwallet.outbox.models import OutboxMessage
from loyalwallet.outbox.service import wakeup
from loyalwallet.web.pages import form_data, redirect, render_staff, staff_page
from loyalwallet.web.sessions import StaffSession

router = APIRouter(include_in_schema=False)


@router.get("/admin/deliveries")
def deliveries(request: Request, who: StaffSession = Depends(staff_page("manager"))) -> Response:
    with db.read() as session:
        dead = session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.merchant_id == who.merchant_id, OutboxMessage.status == "dead")
            .order_by(OutboxMessage.id.desc())
            .limit(200)
        ).all()
        retrying = session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(
                OutboxMessage.merchant_id == who.merchant_id,
                OutboxMessage.status == "pending",
                OutboxMessage.attempts > 0,
            )
        )
    return render_staff(
        request, who, "admin/deliveries.html", {"dead": dead, "retrying": retrying}, section="deliveries"
    )


def _retry(session: Session, who: StaffSession, ids: list[int] | None) -> int:
    stmt = (
        update(OutboxMessage)
        .where(OutboxMessage.merchant_id == who.merchant_id, OutboxMessage.status == "dead")
        .values(status="pending", attempts=0, next_attempt_at=db.utcnow(), locked_until=None)
    )
    if ids is not None:
        stmt = stmt.where(OutboxMessage.id.in_(ids))
    count = session.execute(stmt).rowcount  # type: ignore[attr-defined]  # a CursorResult at run time, typed as Result
    audit(
        session,
        who.actor,
        "outbox.retry",
        "outbox",
        ",".join(map(str, ids or []))[:64] or "all",
        {"rows": count},
    )
    return int(count)


@router.post("/admin/deliveries/{message_id}/retry")
async def retry_one(
    message_id: int, request: Request, who: StaffSession = Depends(staff_page("manager"))
) -> Response:
    await form_data(request, who)
    with db.transaction() as session:
        if _retry(session, who, [message_id]) == 0:
            raise not_found("failed delivery")
    wakeup.set()
    return redirect("/admin/deliveries", "Queued for another try.")


@router.post("/admin/deliveries/retry-all")
async def retry_all(request: Request, who: StaffSession = Depends(staff_page("manager"))) -> Response:
    await form_data(request, who)
    with db.transaction() as session:
        n = _retry(session, who, None)
    wakeup.set()
    return redirect("/admin/deliveries", "Deliveries queued for another try." if n else "Nothing to retry.")
