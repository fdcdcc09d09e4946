"""The feedback dashboard's figures and the comments list, scoped to what the staff
member may see (the owner: everything; a manager bound to locations: those), and the
CSV export. Ratings are few next to purchases: a period's rows are read once and
summed here, the same on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zoneinfo
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalwallet.cards.models import Card
from loyalwallet.errors import DomainError, Explained
from loyalwallet.feedback import rules
from loyalwallet.feedback.models import Feedback
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.models import Location, Staff, StaffLocation

MAX_DAYS = 366
COMMENTS_LIMIT = 200


@dataclass(frozen=True)
class Filters:
    start: dt.date
    end: dt.date  # inclusive
    tz: str
    location_id: int | None = None
    staff_id: int | None = None
    score: int | None = None
    low_only: bool = False
    with_comment: bool = False

    def bounds(self) -> tuple[dt.datetime, dt.datetime]:
        zone = zoneinfo.ZoneInfo(self.tz)
        lo = dt.datetime.combine(self.start, dt.time(0), tzinfo=zone).astimezone(dt.UTC)
        hi = dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time(0), tzinfo=zone).astimezone(dt.UTC)
        return lo, hi


def make_filters(
    tz: str,
    today: dt.date,
    start: str | None = None,
    end: str | None = None,
    *,
    location: str | None = None,
    staff: str | None = None,
    score: str | None = None,
    low_only: bool = False,
    with_comment: bool = False,
) -> Filters:
    """From query parameters; the last 30 days by default. validation_error on nonsense."""
    try:
        e = dt.date.fromisoformat(end) if end else today
        s = dt.date.fromisoformat(start) if start else e - dt.timedelta(days=29)
    except ValueError:
        raise DomainError("validation_error", "dates are YYYY-MM-DD", field="start") from None
    if s > e or (e - s).days >= MAX_DAYS:
        raise Explained(
            "validation_error",
            "the period is 1..{max_days} days",
            max_days=MAX_DAYS,
            extra={"field": "start"},
        )

    def number(raw: str | None, name: str) -> int | None:
        if raw in (None, ""):
            return None
        if not str(raw).isdigit():
            raise Explained("validation_error", "{name} must be a number", name=name, extra={"field": name})
        return int(str(raw))

    sc = number(score, "score")
    if sc is not None and sc not in rules.SCORES:
        raise DomainError("validation_error", "score is 1..5", field="score")
    return Filters(s, e, tz, number(location, "location"), number(staff, "staff"), sc, low_only, with_comment)


def visible_locations(session: Session, actor: Actor) -> frozenset[int] | None:
    """The locations a staff member's reports cover: the owner every one (None); a
    manager or cashier bound to locations only those; an API key bound to one, that one."""
    if actor.role == "owner":
        return None
    if actor.kind == "staff" and actor.id is not None:
        ids = session.scalars(
            select(StaffLocation.location_id).where(StaffLocation.staff_id == actor.id)
        ).all()
        return frozenset(ids) if ids else None
    if actor.kind == "api_key" and actor.location_id is not None:
        return frozenset({actor.location_id})
    return None


def _scoped(session: Session, stmt: Any, actor: Actor, f: Filters) -> Any:
    lo, hi = f.bounds()
    stmt = stmt.where(
        Feedback.merchant_id == actor.merchant_id, Feedback.created_at >= lo, Feedback.created_at < hi
    )
    allowed = visible_locations(session, actor)
    if allowed is not None:
        stmt = stmt.where(Feedback.location_id.in_(sorted(allowed)))
    if f.location_id is not None:
        stmt = stmt.where(Feedback.location_id == f.location_id)
    if f.staff_id is not None:
        stmt = stmt.where(Feedback.staff_id == f.staff_id)
    return stmt


def _names(session: Session, merchant_id: int) -> tuple[dict[int, str], dict[int, str]]:
    locations: dict[int, str] = {
        row[0]: row[1]
        for row in session.execute(
            select(Location.id, Location.name).where(Location.merchant_id == merchant_id)
        )
    }
    staff: dict[int, str] = {
        row[0]: (row[1] or row[2])
        for row in session.execute(
            select(Staff.id, Staff.name, Staff.login).where(Staff.merchant_id == merchant_id)
        )
    }
    return locations, staff


def dashboard(session: Session, actor: Actor, f: Filters) -> dict[str, Any]:
    """Overall, by location, by cashier and by week: count, average, distribution, net."""
    actor.require("manager")
    rows = session.execute(
        _scoped(
            session,
            select(Feedback.location_id, Feedback.staff_id, Feedback.created_at, Feedback.score),
            actor,
            f,
        )
    ).all()
    zone = zoneinfo.ZoneInfo(f.tz)
    overall: dict[int, int] = defaultdict(int)
    by_location: dict[int | None, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    by_staff: dict[int | None, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    by_week: dict[dt.date, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for location_id, staff_id, created_at, score in rows:
        overall[score] += 1
        by_location[location_id][score] += 1
        by_staff[staff_id][score] += 1
        by_week[rules.week_start(created_at.astimezone(zone).date())][score] += 1
    locations, staff = _names(session, actor.merchant_id)

    def table(groups: dict[Any, dict[int, int]], names: dict[int, str], key: str) -> list[dict[str, Any]]:
        out = []
        for k, dist in groups.items():
            name = names.get(k, "—") if k is not None else "—"
            out.append({key: k, "name": name, **rules.summarise(dist).as_dict()})
        return sorted(out, key=lambda r: (-r["count"], r["name"]))

    weeks = []
    week = rules.week_start(f.start)
    while week <= f.end:
        weeks.append({"week": week.isoformat(), **rules.summarise(by_week.get(week, {})).as_dict()})
        week += dt.timedelta(days=7)
    return {
        "period": {"start": f.start.isoformat(), "end": f.end.isoformat()},
        "overall": rules.summarise(overall).as_dict(),
        "by_location": table(by_location, locations, "location_id"),
        "by_cashier": table(by_staff, staff, "staff_id"),
        "by_week": weeks,
    }


def comments(session: Session, actor: Actor, f: Filters, limit: int = COMMENTS_LIMIT) -> list[dict[str, Any]]:
    actor.require("manager")
    stmt = _scoped(session, select(Feedback, Card.code).join(Card, Card.id == Feedback.card_id), actor, f)
    if f.score is not None:
        stmt = stmt.where(Feedback.score == f.score)
    if f.low_only:
        stmt = stmt.where(Feedback.score <= rules.LOW_SCORE)
    if f.with_comment:
        stmt = stmt.where(Feedback.comment.is_not(None))
    locations, staff = _names(session, actor.merchant_id)
    zone = zoneinfo.ZoneInfo(f.tz)
    out = []
    for fb, code in session.execute(
        stmt.order_by(Feedback.created_at.desc(), Feedback.id.desc()).limit(limit)
    ):
        out.append(
            {
                "id": fb.id,
                "purchase_id": fb.purchase_id,
                "card": code,
                "created_at": fb.created_at.isoformat(),
                "local_time": fb.created_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
                "location_id": fb.location_id,
                "location": locations.get(fb.location_id, "—") if fb.location_id else "—",
                "staff_id": fb.staff_id,
                "cashier": staff.get(fb.staff_id, "—") if fb.staff_id else "—",
                "score": fb.score,
                "problems": list(fb.problems or []),
                "comment": fb.comment,
                "edited": bool(fb.edits),
            }
        )
    return out


CSV_COLUMNS = ["id", "date", "purchase", "card", "location", "cashier", "score", "problems", "comment"]


def _cell(value: object) -> object:
    """A guest's text cannot become a spreadsheet formula (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def comments_csv(session: Session, actor: Actor, f: Filters) -> Iterator[str]:
    rows = comments(session, actor, f, limit=100_000)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        writer.writerow(
            [
                _cell(v)
                for v in (
                    r["id"],
                    r["local_time"],
                    r["purchase_id"],
                    r["card"],
                    r["location"],
                    r["cashier"],
                    r["score"],
                    " ".join(r["problems"]),
                    r["comment"],
                )
            ]
        )
    yield "\ufeff" + buf.getvalue()
