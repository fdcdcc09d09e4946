"""Reports on gift certificates: sold, spent, refunded, expired, cancelled over a period,
and what is outstanding now (the merchant's liability to holders)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from loyalwallet.certificates.models import CertificateEntry, GiftCertificate
from loyalwallet.merchants.service import get_merchant
from loyalwallet.text import money


def _bounds(
    tz: str, since: dt.date | None, until: dt.date | None
) -> tuple[dt.datetime | None, dt.datetime | None]:
    zone = ZoneInfo(tz)
    start = dt.datetime.combine(since, dt.time(), zone).astimezone(dt.UTC) if since else None
    end = (
        dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), zone).astimezone(dt.UTC)
        if until
        else None
    )
    return start, end


def summary(
    session: Session, merchant_id: int, since: dt.date | None = None, until: dt.date | None = None
) -> dict[str, Any]:
    """Sums by kind over the period (days in the merchant's time zone, `until` included),
    counts sold, and the outstanding balance of active certificates now."""
    merchant = get_merchant(session, merchant_id)
    start, end = _bounds(merchant.timezone, since, until)
    stmt = select(
        CertificateEntry.kind, func.coalesce(func.sum(CertificateEntry.amount), 0), func.count()
    ).where(CertificateEntry.merchant_id == merchant_id)
    if start is not None:
        stmt = stmt.where(CertificateEntry.created_at >= start)
    if end is not None:
        stmt = stmt.where(CertificateEntry.created_at < end)
    by_kind = {
        kind: (int(total), int(n)) for kind, total, n in session.execute(stmt.group_by(CertificateEntry.kind))
    }
    outstanding = session.execute(
        select(
            func.coalesce(func.sum(GiftCertificate.balance), 0),
            func.coalesce(func.sum(case((GiftCertificate.balance > 0, 1), else_=0)), 0),
        ).where(GiftCertificate.merchant_id == merchant_id, GiftCertificate.status == "active")
    ).one()
    return {
        "currency": merchant.currency,
        "from": since.isoformat() if since else None,
        "to": until.isoformat() if until else None,
        "sold": by_kind.get("issue", (0, 0))[0],
        "sold_count": by_kind.get("issue", (0, 0))[1],
        "spent": -by_kind.get("spend", (0, 0))[0],
        "spent_count": by_kind.get("spend", (0, 0))[1],
        "refunded": by_kind.get("refund", (0, 0))[0],
        "expired": -by_kind.get("expiry", (0, 0))[0],
        "voided": -by_kind.get("void", (0, 0))[0],
        "outstanding": int(outstanding[0]),
        "outstanding_count": int(outstanding[1]),
    }


def dashboard_tile(
    session: Session, merchant_id: int, start: dt.date, end: dt.date, _: Callable[[str], str]
) -> list[dict[str, str]]:
    """The dashboard's gift-certificate tile: outstanding now (the liability), and what
    was sold, spent and expired in the period. Nothing for a merchant who never sold one."""
    s = summary(session, merchant_id, start, end)
    if not s["sold"] and not s["outstanding"] and not s["spent"]:
        return []
    cur = s["currency"]
    hint = _("sold %(sold)s · spent %(spent)s · expired %(expired)s") % {
        "sold": money(s["sold"], cur, trim_zero_cents=True),
        "spent": money(s["spent"], cur, trim_zero_cents=True),
        "expired": money(s["expired"], cur, trim_zero_cents=True),
    }
    return [
        {
            "id": "certificates",
            "label": _("Gift certificates outstanding"),
            "value": money(s["outstanding"], cur, trim_zero_cents=True),
            "hint": hint,
        }
    ]
