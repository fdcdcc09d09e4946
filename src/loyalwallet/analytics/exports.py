"""CSV exports of guests and purchases, streamed in pages (keyset pagination), so an
export of a million rows never sits in memory. Guests' PII is decrypted page by page."""

from __future__ import annotations

import csv
import io
import zoneinfo
from collections.abc import Iterator, Sequence

from sqlalchemy import select

from loyalwallet import crypto, db
from loyalwallet.analytics.queries import Filters
from loyalwallet.cards.models import Card
from loyalwallet.checkout.models import Purchase
from loyalwallet.customers.models import Customer
from loyalwallet.merchants.models import Location
from loyalwallet.programs.models import Program
from loyalwallet.text import amount

PAGE = 1000

GUEST_COLUMNS = [
    "card",
    "program",
    "name",
    "phone",
    "email",
    "birthday",
    "marketing_consent",
    "balance",
    "stamps",
    "tier",
    "visits",
    "spend",
    "last_visit",
    "channel",
    "joined",
]
PURCHASE_COLUMNS = [
    "id",
    "date",
    "card",
    "program",
    "location",
    "amount",
    "discount",
    "points_redeemed",
    "to_pay",
    "points_accrued",
    "stamps_added",
    "status",
    "refunded_amount",
    "external_id",
]


def _line(values: Sequence[object]) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerow(["" if v is None else v for v in values])
    return buf.getvalue()


def _money(minor: int) -> str:
    """CSV: "-1234.50", no grouping and no symbol, so spreadsheets read a number."""
    return amount(minor, group="")


def guests_csv(merchant_id: int, tz: str, program_id: int | None = None) -> Iterator[str]:
    zone = zoneinfo.ZoneInfo(tz)
    yield "\ufeff" + _line(GUEST_COLUMNS)  # the BOM makes Excel read UTF-8
    last = 0
    while True:
        with db.read() as session:
            stmt = (
                select(Card, Customer, Program.name)
                .join(Customer, Customer.id == Card.customer_id)
                .join(Program, Program.id == Card.program_id)
                .where(Card.merchant_id == merchant_id, Card.id > last, Customer.erased_at.is_(None))
                .order_by(Card.id)
                .limit(PAGE)
            )
            if program_id is not None:
                stmt = stmt.where(Card.program_id == program_id)
            rows = session.execute(stmt).all()
        if not rows:
            return
        out = []
        for card, customer, program_name in rows:

            def opened(blob: bytes | None, column: str, c: Customer = customer) -> str | None:
                return crypto.open_(blob, merchant_id=c.merchant_id, column=column)

            out.append(
                _line(
                    [
                        card.code,
                        program_name,
                        opened(customer.name_enc, "name"),
                        opened(customer.phone_enc, "phone"),
                        opened(customer.email_enc, "email"),
                        opened(customer.birthday_enc, "birthday"),
                        "yes" if customer.marketing_consent else "no",
                        card.balance,
                        card.stamps,
                        card.tier,
                        card.visits,
                        _money(card.spend),
                        card.last_visit_at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
                        if card.last_visit_at
                        else None,
                        card.channel,
                        card.created_at.astimezone(zone).strftime("%Y-%m-%d"),
                    ]
                )
            )
        last = rows[-1][0].id
        yield "".join(out)


def purchases_csv(f: Filters) -> Iterator[str]:
    zone = zoneinfo.ZoneInfo(f.period.tz)
    lo, hi = f.period.utc_bounds()
    yield "\ufeff" + _line(PURCHASE_COLUMNS)
    last = 0
    while True:
        with db.read() as session:
            stmt = (
                select(Purchase, Card.code, Program.name, Location.name)
                .join(Card, Card.id == Purchase.card_id)
                .join(Program, Program.id == Purchase.program_id)
                .outerjoin(Location, Location.id == Purchase.location_id)
                .where(
                    Purchase.merchant_id == f.merchant_id,
                    Purchase.created_at >= lo,
                    Purchase.created_at < hi,
                    Purchase.id > last,
                )
                .order_by(Purchase.id)
                .limit(PAGE)
            )
            if f.location_id is not None:
                stmt = stmt.where(Purchase.location_id == f.location_id)
            if f.program_id is not None:
                stmt = stmt.where(Purchase.program_id == f.program_id)
            rows = session.execute(stmt).all()
        if not rows:
            return
        yield "".join(
            _line(
                [
                    p.id,
                    p.created_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
                    code,
                    program,
                    location,
                    _money(p.amount),
                    _money(p.discount),
                    p.points_redeemed,
                    _money(p.to_pay),
                    p.points_accrued,
                    p.stamps_added,
                    p.status,
                    _money(p.refunded_amount),
                    p.external_id,
                ]
            )
            for p, code, program, location in rows
        )
        last = rows[-1][0].id
