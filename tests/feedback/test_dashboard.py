"""The owner's and manager's view of feedback: figures by location, cashier and week,
the comments with filters, the CSV (a guest's text never becomes a formula), scoping."""

from __future__ import annotations

from fastapi.testclient import TestClient

from feedback_support import buy_and_invite, enable
from loyalwallet import db
from loyalwallet.merchants.actors import system
from loyalwallet.merchants.service import create_location
from staff_support import add_staff, csrf_of, login
from support import Shop


def _post(client: TestClient, path: str, score: int, comment: str = "") -> None:
    r = client.post(path, data={"score": str(score), "comment": comment}, follow_redirects=False)
    assert r.status_code == 303, r.text


def test_dashboard_figures_comments_csv_and_scoping(shop: Shop, app: object) -> None:
    program = shop.program("bonus")
    with db.transaction() as session:
        second = create_location(session, system(shop.merchant_id), "Riverside").id
    enable(shop)
    code = shop.card(program)["code"]
    scores = [5, 5, 4, 2, 1]
    for i, score in enumerate(scores):
        path, _ = buy_and_invite(shop, code)
        _post(shop.client, path, score, '=HYPERLINK("http://evil")' if i == 3 else f"note {i}")
    # One more at the second location.
    purchase = shop.buy(code, 10_000, location_id=second)
    from loyalwallet.outbox import worker

    worker.drain()
    _post(shop.client, f"/c/{_token(code)}/rate/{purchase['id']}", 3, "riverside")

    summary = shop.get("/api/v1/feedback/summary").json()
    overall = summary["overall"]
    assert overall["count"] == 6
    assert overall["distribution"] == {"1": 1, "2": 1, "3": 1, "4": 1, "5": 2}
    assert overall["average"] == round(20 / 6, 2)
    assert overall["net"] == round((2 - 3) * 100 / 6, 1)
    by_location = {r["name"]: r["count"] for r in summary["by_location"]}
    assert by_location == {"Main": 5, "Riverside": 1}
    assert sum(w["count"] for w in summary["by_week"]) == 6
    low = shop.get("/api/v1/feedback", params={"low": "true"}).json()["items"]
    assert sorted(i["score"] for i in low) == [1, 2, 3]
    assert (
        shop.get("/api/v1/feedback/summary", params={"from": "2026-13-01"}).json()["code"]
        == "validation_error"
    )
    assert shop.get("/api/v1/feedback/summary", role="cashier").status_code == 403

    owner = login(app, add_staff(shop, "owner"))
    page = owner.get("/admin/feedback?lang=en")
    assert page.status_code == 200
    assert 'id="feedback-kpis"' in page.text and "<svg" in page.text and "riverside" in page.text
    filtered = owner.get(f"/admin/feedback?lang=en&location={second}")
    assert "riverside" in filtered.text and "note 0" not in filtered.text
    csv = owner.get("/admin/feedback.csv")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert "'=HYPERLINK" in csv.text and "\n=HYPERLINK" not in csv.text and ",=HYPERLINK" not in csv.text

    # A manager bound to the second location sees only it.
    manager = login(app, add_staff(shop, "manager", locations=[second]))
    mine = manager.get("/admin/feedback?lang=en")
    assert "riverside" in mine.text and "note 0" not in mine.text
    assert 'id="feedback-settings"' not in mine.text  # settings are the owner's

    # The owner's settings form.
    csrf = csrf_of(page.text)
    r = owner.post(
        "/admin/feedback/settings",
        data={
            "csrf": csrf,
            "enabled": "on",
            "reward_points": "15",
            f"links.{second}.google": "https://g.page/r/x",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    settings = shop.get("/api/v1/feedback/settings").json()
    assert (
        settings["reward_points"] == 15
        and settings["review_links"][str(second)]["google"] == "https://g.page/r/x"
    )
    bad = owner.post(
        "/admin/feedback/settings",
        data={"csrf": csrf, "enabled": "on", "reward_points": "-1"},
        follow_redirects=False,
    )
    assert (
        bad.status_code in (303, 422) and shop.get("/api/v1/feedback/settings").json()["reward_points"] == 15
    )


def _token(code: str) -> str:
    from feedback_support import card_row

    return card_row(code).public_token
