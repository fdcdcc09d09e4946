"""Staff reports: per cashier or per location, for a date range — sales, revenue, average
check, cards issued, points accrued and redeemed, rewards given, refunds, fraud alerts and
the guests' feedback score. The owner sees everything; a manager bound to locations sees
the operations at those locations.

Each figure is one grouped query on its own table (purchases, refunds, alerts, feedback,
the audit log's card.create), merged by key here.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalwallet.cards.models import Card
from loyalwallet.checkout.models import Purchase, Refund
from loyalwallet.errors import DomainError
from loyalwallet.feedback.models import Feedback
from loyalwallet.feedback.queries import Filters, visible_locations
from loyalwallet.fraud.models import Alert
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.models import AuditLog, Location, Staff
from loyalwallet.text import amount

GROUPS = ("cashier", "location")
COLUMNS = (
    "sales",
    "revenue",
    "average_check",
    "cards_issued",
    "points_accrued",
    "points_redeemed",
    "rewards",
    "refunds",
    "refunded",
    "alerts",
    "feedback_count",
    "feedback_average",
)
MONEY = ("revenue", "average_check", "refunded")


def _empty() -> dict[str, Any]:
    return {c: 0 for c in COLUMNS} | {"feedback_average": None, "amount_total": 0}


def report(session: Session, actor: Actor, f: Filters, group: str = "cashier") -> list[dict[str, Any]]:
    actor.require("manager")
    if group not in GROUPS:
        raise DomainError("validation_error", "group is cashier or location", field="group")
    lo, hi = f.bounds()
    allowed = visible_locations(session, actor)
    rows: dict[int | None, dict[str, Any]] = defaultdict(_empty)

    def where_location(column: Any) -> list[Any]:
        out = []
        if allowed is not None:
            out.append(column.in_(sorted(allowed)))
        if f.location_id is not None:
            out.append(column == f.location_id)
        return out

    # Purchases: by the staff member who rang them up, or by location.
    p_key = Purchase.actor_id if group == "cashier" else Purchase.location_id
    p_where = [Purchase.merchant_id == actor.merchant_id, Purchase.created_at >= lo, Purchase.created_at < hi]
    p_where += where_location(Purchase.location_id)
    if group == "cashier":
        p_where.append(Purchase.actor_type == "staff")
    for key, n, total, paid, accrued, redeemed, rewards in session.execute(
        select(
            p_key,
            func.count(),
            func.coalesce(func.sum(Purchase.amount), 0),
            func.coalesce(func.sum(Purchase.to_pay), 0),
            func.coalesce(func.sum(Purchase.points_accrued), 0),
            func.coalesce(func.sum(Purchase.points_redeemed), 0),
            func.count(Purchase.coupon_id),
        )
        .where(*p_where)
        .group_by(p_key)
    ):
        r = rows[key]
        r.update(
            sales=int(n),
            revenue=int(paid),
            average_check=int(total) // int(n) if n else 0,
            amount_total=int(total),
            points_accrued=int(accrued),
            points_redeemed=int(redeemed),
            rewards=int(rewards),
        )

    # Refunds: by who refunded, or by the purchase's location.
    r_key = Refund.actor_id if group == "cashier" else Purchase.location_id
    r_where = [Refund.merchant_id == actor.merchant_id, Refund.created_at >= lo, Refund.created_at < hi]
    r_where += where_location(Purchase.location_id)
    if group == "cashier":
        r_where.append(Refund.actor_type == "staff")
    for key, n, money in session.execute(
        select(r_key, func.count(), func.coalesce(func.sum(Refund.money_returned), 0))
        .join(Purchase, Purchase.id == Refund.purchase_id)
        .where(*r_where)
        .group_by(r_key)
    ):
        rows[key].update(refunds=int(n), refunded=int(money))

    # Fraud alerts (each alert row may stand for several repeats).
    a_key = Alert.actor_id if group == "cashier" else Alert.location_id
    a_where = [Alert.merchant_id == actor.merchant_id, Alert.created_at >= lo, Alert.created_at < hi]
    a_where += where_location(Alert.location_id)
    if group == "cashier":
        a_where.append(Alert.actor_type == "staff")
    for key, n in session.execute(
        select(a_key, func.coalesce(func.sum(Alert.count), 0)).where(*a_where).group_by(a_key)
    ):
        rows[key]["alerts"] = int(n)

    # Feedback on the visits.
    f_key = Feedback.staff_id if group == "cashier" else Feedback.location_id
    f_where = [Feedback.merchant_id == actor.merchant_id, Feedback.created_at >= lo, Feedback.created_at < hi]
    f_where += where_location(Feedback.location_id)
    if group == "cashier":
        f_where.append(Feedback.staff_id.is_not(None))
    for key, n, avg in session.execute(
        select(f_key, func.count(), func.avg(Feedback.score)).where(*f_where).group_by(f_key)
    ):
        rows[key].update(
            feedback_count=int(n), feedback_average=round(float(avg), 2) if avg is not None else None
        )

    # Cards issued: by a staff member (the audit log knows who), or by the location the
    # card was issued at (cards.issued_location_id: the till's or the join link's).
    if group == "cashier":
        c_where = [
            AuditLog.merchant_id == actor.merchant_id,
            AuditLog.action == "card.create",
            AuditLog.actor_type == "staff",
            AuditLog.created_at >= lo,
            AuditLog.created_at < hi,
        ]
        query = select(AuditLog.actor_id, func.count()).where(*c_where)
        if f.location_id is not None:
            query = query.join(
                Card, (Card.merchant_id == AuditLog.merchant_id) & (Card.code == AuditLog.target_id)
            ).where(*where_location(Card.issued_location_id))
        for key, n in session.execute(query.group_by(AuditLog.actor_id)):
            if allowed is None or key in rows:
                rows[key]["cards_issued"] = int(n)
    else:
        c_where = [Card.merchant_id == actor.merchant_id, Card.created_at >= lo, Card.created_at < hi]
        c_where += where_location(Card.issued_location_id)
        for key, n in session.execute(
            select(Card.issued_location_id, func.count()).where(*c_where).group_by(Card.issued_location_id)
        ):
            rows[key]["cards_issued"] = int(n)

    names = _names(session, actor.merchant_id, group)
    out = []
    for key, r in rows.items():
        out.append({"id": key, "name": names.get(key, "—") if key is not None else "—", **r})
    return out


def _names(session: Session, merchant_id: int, group: str) -> dict[int, str]:
    if group == "location":
        return {
            r[0]: r[1]
            for r in session.execute(
                select(Location.id, Location.name).where(Location.merchant_id == merchant_id)
            )
        }
    return {
        r[0]: r[1] or r[2]
        for r in session.execute(
            select(Staff.id, Staff.name, Staff.login).where(Staff.merchant_id == merchant_id)
        )
    }


def sort_rows(rows: list[dict[str, Any]], column: str, descending: bool) -> list[dict[str, Any]]:
    if column != "name" and column not in COLUMNS:
        column = "revenue"
    if column == "name":
        return sorted(rows, key=lambda r: str(r["name"]).lower(), reverse=descending)
    present = [r for r in rows if r[column] is not None]
    missing = [r for r in rows if r[column] is None]
    return sorted(present, key=lambda r: r[column], reverse=descending) + missing


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    total = _empty()
    for r in rows:
        for c in COLUMNS:
            if c not in ("average_check", "feedback_average"):
                total[c] += r[c] or 0
    amount_sum = sum(r["amount_total"] for r in rows)
    total["average_check"] = amount_sum // total["sales"] if total["sales"] else 0
    scored = [(r["feedback_average"], r["feedback_count"]) for r in rows if r["feedback_average"] is not None]
    n = sum(c for _, c in scored)
    total["feedback_average"] = round(sum(a * c for a, c in scored) / n, 2) if n else None
    return total


def report_csv(rows: list[dict[str, Any]], group: str) -> Iterator[str]:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([group, *COLUMNS])
    for r in rows:
        name = str(r["name"])
        if name[:1] in ("=", "+", "-", "@"):
            name = "'" + name
        writer.writerow(
            [name]
            + [amount(r[c], group="") if c in MONEY else ("" if r[c] is None else r[c]) for c in COLUMNS]
        )
    yield "\ufeff" + buf.getvalue()
