"""The staff report as the owner and a manager meet it: per cashier and per location,
sales, revenue, average check, cards issued, points, refunds, feedback; sorting; CSV;
a manager bound to a location sees only it."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from enrollment_support import sms_code, start
from feedback_support import card_row, enable
from loyalwallet import db
from loyalwallet.cards.models import Card
from loyalwallet.feedback.queries import make_filters
from loyalwallet.merchants.actors import system
from loyalwallet.merchants.service import create_location, get_merchant, today
from loyalwallet.outbox import worker
from loyalwallet.reports import staff as staff_report
from staff_support import add_staff, login, page_csrf
from support import Shop, random_phone


class Till:
    """A cashier working the API with their session cookie (as the cashier page does)."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.csrf = page_csrf(client, "/cashier")

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.client.post(
            path, json=body, headers={"X-CSRF-Token": self.csrf, "Idempotency-Key": random_phone()}
        )
        assert r.status_code in (200, 201), r.text
        return dict(r.json())

    def card(self, program: int) -> str:
        return str(self.post("/api/v1/cards", {"program_id": program, "phone": random_phone()})["code"])

    def buy(self, code: str, amount: int) -> dict[str, Any]:
        return self.post("/api/v1/purchases", {"card": code, "amount": amount})


def _rows(client: TestClient, query: str) -> str:
    r = client.get(f"/admin/reports/staff?lang=en&{query}")
    assert r.status_code == 200, r.text
    return r.text


def test_staff_report_per_cashier_and_location(shop: Shop, app: Any) -> None:
    program = shop.program("bonus")
    with db.transaction() as session:
        riverside = create_location(session, system(shop.merchant_id), "Riverside").id
    enable(shop)
    olga_login = add_staff(shop, "cashier", locations=[shop.location_id])
    ivan_login = add_staff(shop, "cashier", locations=[riverside])
    olga, ivan = Till(login(app, olga_login)), Till(login(app, ivan_login))
    a, b = olga.card(program), olga.card(program)
    olga.buy(a, 10_000)
    olga.buy(a, 20_000)
    first = olga.buy(b, 30_000)
    c = ivan.card(program)
    refunded = ivan.buy(c, 50_000)
    assert shop.post(
        f"/api/v1/purchases/{refunded['id']}/refunds", {"amount": 50_000}, headers={"Idempotency-Key": "r1"}
    ).status_code in (200, 201)
    worker.drain()
    # Olga's guest rates the visit 4.
    token = card_row(b).public_token
    assert (
        shop.client.post(
            f"/c/{token}/rate/{first['id']}", data={"score": "4"}, follow_redirects=False
        ).status_code
        == 303
    )

    owner = login(app, add_staff(shop, "owner"))

    with db.read() as session:
        merchant = get_merchant(session, shop.merchant_id)
        f = make_filters(merchant.timezone, today(merchant))
        by_cashier = {r["id"]: r for r in staff_report.report(session, system(shop.merchant_id), f)}
    olga_row = by_cashier[olga_login.staff_id]
    assert (olga_row["sales"], olga_row["revenue"], olga_row["average_check"]) == (3, 60_000, 20_000)
    assert olga_row["cards_issued"] == 2 and olga_row["points_accrued"] > 0
    assert (olga_row["feedback_count"], olga_row["feedback_average"]) == (1, 4.0)
    assert (
        by_cashier[ivan_login.staff_id]["sales"] == 1 and by_cashier[ivan_login.staff_id]["cards_issued"] == 1
    )

    page = _rows(owner, "group=cashier")
    assert 'id="staff-report"' in page and "<svg" in page
    assert f'data-row="{olga_login.staff_id}"' in page and f'data-row="{ivan_login.staff_id}"' in page
    # Sorted by sales, ascending: Ivan (1) before Olga (3).
    asc = _rows(owner, "group=cashier&sort=sales&dir=asc")
    assert asc.index(f'data-row="{ivan_login.staff_id}"') < asc.index(f'data-row="{olga_login.staff_id}"')
    desc = _rows(owner, "group=cashier&sort=sales&dir=desc")
    assert desc.index(f'data-row="{olga_login.staff_id}"') < desc.index(f'data-row="{ivan_login.staff_id}"')

    by_location = _rows(owner, "group=location")
    assert "Riverside" in by_location and "Main" in by_location
    csv = owner.get("/admin/reports/staff.csv?group=location").text
    header, *lines = csv.lstrip("\ufeff").strip().splitlines()
    assert header.startswith("location,sales,revenue")
    riverside_line = next(line for line in lines if line.startswith("Riverside"))
    cells = riverside_line.split(",")
    assert cells[1] == "1" and cells[8] == "1" and cells[9] == "500.00"  # one sale, one refund of 500.00

    # A manager bound to Riverside sees Riverside only.
    manager = login(app, add_staff(shop, "manager", locations=[riverside]))
    mine = _rows(manager, "group=location")
    assert "Riverside" in mine and ">Main<" not in mine
    cashiers = _rows(manager, "group=cashier")
    assert (
        f'data-row="{olga_login.staff_id}"' not in cashiers
        and f'data-row="{ivan_login.staff_id}"' in cashiers
    )
    # Bad input: a clear error, never a 500.
    assert owner.get("/admin/reports/staff?group=nobody").status_code == 422
    assert owner.get("/admin/reports/staff?from=yesterday").status_code == 422
    cashier_view = login(app, olga_login).get("/admin/reports/staff")
    assert cashier_view.status_code in (303, 403)


def _report(shop: Shop, group: str, location_id: int | None = None) -> dict[Any, dict[str, Any]]:
    with db.read() as session:
        merchant = get_merchant(session, shop.merchant_id)
        f = make_filters(
            merchant.timezone, today(merchant), location=str(location_id) if location_id else None
        )
        return {r["id"]: r for r in staff_report.report(session, system(shop.merchant_id), f, group)}


def test_cards_issued_by_location(shop: Shop, app: Any) -> None:
    program = shop.program("bonus")
    with db.transaction() as session:
        riverside = create_location(session, system(shop.merchant_id), "Riverside").id
    olga_login = add_staff(shop, "cashier", locations=[shop.location_id])
    ivan_login = add_staff(shop, "cashier", locations=[riverside])
    olga, ivan = Till(login(app, olga_login)), Till(login(app, ivan_login))
    mine = [olga.card(program), olga.card(program), ivan.card(program)]

    # A guest joins through the Riverside counter QR.
    body = {"program_id": program, "kind": "counter_qr", "name": "River till", "location_id": riverside}
    channel = shop.post("/api/v1/channels", body, role="manager").json()
    phone = random_phone()
    verify = start(shop.client, program, phone, channel=channel["slug"])
    assert shop.client.post(verify, data={"code": sms_code(phone)}, follow_redirects=False).status_code == 303
    joined = shop.get(f"/api/v1/cards?phone={phone}").json()["items"][0]["code"]

    with db.read() as session:
        where = dict(
            session.execute(
                select(Card.code, Card.issued_location_id).where(Card.code.in_([*mine, joined]))
            ).all()
        )
    assert [where[c] for c in mine] == [shop.location_id, shop.location_id, riverside]
    assert where[joined] == riverside

    by_location = _report(shop, "location")
    assert by_location[shop.location_id]["cards_issued"] == 2
    assert by_location[riverside]["cards_issued"] == 2
    # Per cashier at one location: only the cards issued there.
    at_riverside = _report(shop, "cashier", riverside)
    assert at_riverside[ivan_login.staff_id]["cards_issued"] == 1
    assert at_riverside.get(olga_login.staff_id, {"cards_issued": 0})["cards_issued"] == 0
    assert _report(shop, "cashier")[olga_login.staff_id]["cards_issued"] == 2

    owner = login(app, add_staff(shop, "owner"))
    csv = owner.get("/admin/reports/staff.csv?group=location").text
    header, *lines = csv.lstrip("\ufeff").strip().splitlines()
    column = header.split(",").index("cards_issued")
    riverside_line = next(line for line in lines if line.startswith("Riverside")).split(",")
    assert riverside_line[column] == "2"
