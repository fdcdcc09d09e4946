"""Admin pages of campaigns, triggers, coupons, alerts and webhooks, through their forms
(and once in the browser)."""

from __future__ import annotations

import re

from fakes.http_target import FakeTarget
from loyalwallet.outbox import worker
from staff_support import StaffLogin, add_staff, login, page_csrf
from support import Shop

HTML = {"accept": "text/html"}


def browser_login_steps(page, live_server, who: StaffLogin, next_path: str) -> None:
    page.goto(f"{live_server.url}/login?next={next_path}")
    page.fill("#login", who.login)
    page.fill("#password", who.password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def test_campaign_pages(app, shop: Shop) -> None:
    program = shop.program("bonus")
    for _ in range(3):
        shop.card(program, marketing_consent=True)
    manager = login(app, add_staff(shop, "manager"))
    page = manager.get("/admin/campaigns")
    assert page.status_code == 200 and 'href="/admin/campaigns"' in page.text and "/admin/alerts" in page.text
    csrf = page_csrf(manager, "/admin/campaigns")
    form = {"csrf": csrf, "name": "Hello", "header": "Hi", "body": "Come by", "program_id": str(program)}
    counted = manager.post("/admin/campaigns", data={**form, "action": "count"})
    assert counted.status_code == 200 and re.search(r'id="c-count-result"><b>3</b>', counted.text)
    sent = manager.post(
        "/admin/campaigns", data={**form, "when": "now", "holdout_pct": "0"}, follow_redirects=False
    )
    assert sent.status_code == 303 and sent.headers["location"].startswith("/admin/campaigns/")
    worker.drain()
    detail = manager.get(sent.headers["location"])
    assert detail.status_code == 200 and 'id="c-stats"' in detail.text and ">3<" in detail.text
    # A bad form comes back with the error, nothing written.
    bad = manager.post(
        "/admin/campaigns",
        data={**form, "body": "", "when": "now"},
        headers={**HTML, "referer": "http://testserver/admin/campaigns"},
        follow_redirects=False,
    )
    assert bad.status_code == 303 and "lw_flash" in bad.headers.get("set-cookie", "")
    cashier = login(app, add_staff(shop, "cashier"))
    assert cashier.get("/admin/campaigns").status_code == 403


def test_trigger_and_coupon_pages(app, shop: Shop) -> None:
    manager = login(app, add_staff(shop, "manager"))
    csrf = page_csrf(manager, "/admin/triggers")
    r = manager.post(
        "/admin/triggers",
        data={
            "csrf": csrf,
            "kind": "lapsed",
            "name": "Miss you",
            "header": "Hi",
            "body": "{days} days!",
            "days": "30",
            "send_at": "10:00",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = manager.get("/admin/triggers")
    assert "Miss you" in page.text and "{days} days!" in page.text
    r = manager.post(
        "/admin/triggers",
        data={
            "csrf": csrf,
            "kind": "happy_hour",
            "header": "H",
            "body": "B",
            "start": "18:00",
            "end": "18:00",
            "weekdays": "5",
        },
        headers={**HTML, "referer": "http://testserver/admin/triggers"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and "lw_flash" in r.headers.get("set-cookie", "")  # bad schedule refused
    night = {"csrf": csrf, "kind": "happy_hour", "name": "Night", "header": "H", "body": "B", "weekdays": "5"}
    r = manager.post(
        "/admin/triggers", data={**night, "start": "22:00", "end": "02:00"}, follow_redirects=False
    )
    assert r.status_code == 303  # past midnight is fine
    [trigger] = [t for t in shop.get("/api/v1/triggers").json()["items"] if t["name"] == "Night"]
    assert (
        manager.post(
            f"/admin/triggers/{trigger['id']}/delete", data={"csrf": csrf}, follow_redirects=False
        ).status_code
        == 303
    )
    assert "Night" not in manager.get("/admin/triggers").text  # archived: off the list
    r = manager.post(
        "/admin/coupons",
        data={"csrf": csrf, "name": "Certificate", "kind": "fixed_off", "value": "500", "valid_days": "365"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    offer_id = shop.get("/api/v1/offers").json()["items"][0]["id"]
    assert shop.get(f"/api/v1/offers/{offer_id}").json()["value"] == 50_000
    r = manager.post(
        f"/admin/coupons/{offer_id}/print", data={"csrf": csrf, "count": "3"}, follow_redirects=False
    )
    assert r.status_code == 303
    page = manager.get("/admin/coupons")
    assert "codes.pdf" in page.text and "Certificate" in page.text


def test_alert_and_webhook_pages(app, shop: Shop) -> None:
    program = shop.program("bonus")
    card = shop.card(program)
    for _ in range(6):
        shop.buy(card["code"], 10_000)  # the 6th within the hour alerts
    owner = login(app, add_staff(shop, "owner"))
    page = owner.get("/admin/alerts")
    assert page.status_code == 200 and card["code"] in page.text and 'id="fraud-rules"' in page.text
    alert_id = shop.get("/api/v1/alerts").json()["items"][0]["id"]
    csrf = page_csrf(owner, "/admin/alerts")
    assert (
        owner.post(f"/admin/alerts/{alert_id}/ack", data={"csrf": csrf}, follow_redirects=False).status_code
        == 303
    )
    assert shop.get("/api/v1/alerts?open=true").json()["items"] == []
    rules = {"csrf": csrf}
    for name, fields in {
        "max_accrual_per_day": {"points": "5000"},
        "max_redemption_per_day": {"points": "5000"},
        "max_purchases_per_hour": {"count": "3"},
        "own_card": {},
        "refund_window": {"days": "14"},
        "refund_manager_only": {},
        "large_redemption": {"points": "3000"},
        "cashier_burst": {"operations": "30", "minutes": "10"},
    }.items():
        rules[f"{name}.action"] = "block" if name == "max_purchases_per_hour" else "off"
        rules.update({f"{name}.{k}": v for k, v in fields.items()})
    assert owner.post("/admin/alerts/rules", data=rules, follow_redirects=False).status_code == 303
    assert shop.get("/api/v1/fraud/rules").json()["rules"]["max_purchases_per_hour"] == {
        "action": "block",
        "count": 3,
    }
    manager = login(app, add_staff(shop, "manager"))
    assert 'id="fraud-rules"' not in manager.get("/admin/alerts").text  # the rules are the owner's

    worker.drain()  # the purchases' events are out before the webhook exists
    target = FakeTarget().start()
    try:
        csrf = page_csrf(manager, "/admin/webhooks")
        r = manager.post(
            "/admin/webhooks", data={"csrf": csrf, "url": target.url, "events": "purchase.created"}
        )
        assert r.status_code == 200
        secret = re.search(r'id="webhook-secret">[^<]*<code>(whsec_[^<]+)</code>', r.text)
        assert secret, "the secret is shown once"
        assert "whsec_" not in manager.get("/admin/webhooks").text
        endpoint = shop.get("/api/v1/webhooks").json()["items"][0]
        assert (
            manager.post(
                f"/admin/webhooks/{endpoint['id']}/test", data={"csrf": csrf}, follow_redirects=False
            ).status_code
            == 303
        )
        worker.drain()
        assert [req.json()["type"] for req in target.received()] == ["ping"]
        assert ">200<" in manager.get("/admin/webhooks").text
    finally:
        target.stop()


def test_campaign_in_the_browser(page, live_server, shop: Shop) -> None:
    program = shop.program("bonus")
    shop.card(program, marketing_consent=True)
    owner = add_staff(shop, "owner")
    browser_login_steps(page, live_server, owner, "/admin/campaigns")
    page.click("nav.sections >> text=Campaigns")
    page.fill("#c-name", "Weekend")
    page.fill("#c-header", "This weekend")
    page.fill("#c-body", "Two lattes for one")
    page.click("#c-count")
    page.wait_for_selector("#c-count-result")
    assert page.text_content("#c-count-result").strip().startswith("1")
    page.check("input[name=when][value=now]")
    page.click("#c-save")
    page.wait_for_selector("#c-status")
    assert page.text_content("#c-status").strip() in ("sending", "sent")
