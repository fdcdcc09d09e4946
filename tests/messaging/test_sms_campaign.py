"""SMS campaigns against the fake SMS.ru: the cost estimate (sms/cost) before sending,
the per-campaign cap, guests with marketing consent only, bad input written nowhere."""

from __future__ import annotations

from sqlalchemy import select

from fakes import smsru
from loyalwallet import db
from loyalwallet.campaigns.models import CampaignRecipient
from loyalwallet.outbox import worker
from support import Shop, random_phone


def test_estimate_then_send_under_the_cap(shop: Shop, fake_smsru: smsru.FakeSmsRu) -> None:
    program = shop.program("bonus")
    phones = [random_phone() for _ in range(3)]
    for phone in phones:
        shop.card(program, phone=phone, marketing_consent=True)
    quiet = random_phone()
    shop.card(program, phone=quiet, marketing_consent=False)

    for bad in ({"cap_messages": 0}, {"cap_cost": "100"}, {"cap_messages": True}, {"channel": "pigeon"}):
        r = shop.post("/api/v1/campaigns", {"name": "x", "header": "h", "body": "b", "channel": "sms", **bad})
        assert r.status_code == 422, (bad, r.text)
    r = shop.post(
        "/api/v1/campaigns",
        {"name": "x", "header": "h", "body": "b", "channel": "sms", "points": 5, "send_now": True},
    )
    assert r.status_code == 422  # points go with a wallet campaign
    r = shop.post(
        "/api/v1/campaigns",
        {"name": "Tea", "header": "Чай <b>", "body": "Новый улун.", "channel": "sms", "cap_messages": 2},
    )
    assert r.status_code == 201, r.text
    campaign = r.json()
    assert campaign["sms"]["cap_messages"] == 2
    cid = campaign["id"]

    # No sending before the cost is known.
    r = shop.post(f"/api/v1/campaigns/{cid}/send")
    assert r.status_code == 409 and r.json()["code"] == "conflict"

    r = shop.post(f"/api/v1/campaigns/{cid}/sms-estimate")
    assert r.status_code == 200, r.text
    est = r.json()
    assert (est["recipients"], est["messages"], est["refused"]) == (3, 3, 0)
    assert est["cost"] == 3 * 345 and est["currency"] == "RUB"  # 3.45 ₽ a part, in kopecks
    [asked] = fake_smsru.cost_requests[-1:]
    assert sorted(asked["to"].split(",")) == sorted(p.lstrip("+") for p in phones)
    assert quiet.lstrip("+") not in asked["to"] and asked["json"] == "1"

    r = shop.post(f"/api/v1/campaigns/{cid}/send")
    assert r.status_code == 200, r.text
    worker.drain()
    got = [p for p in phones if fake_smsru.last_to(p) is not None]
    assert len(got) == 2 and fake_smsru.last_to(quiet) is None
    assert fake_smsru.last_to(got[0]).msg.startswith("Test café: Чай <b>. Новый улун.")  # type: ignore[union-attr]
    view = shop.get(f"/api/v1/campaigns/{cid}").json()
    assert view["status"] == "sent"
    assert (view["stats"]["sent"], view["stats"]["skipped"]) == (2, 1), view["stats"]
    assert (view["sms"]["spent_messages"], view["sms"]["spent_cost"]) == (2, 690)
    with db.read() as session:
        errors = session.scalars(
            select(CampaignRecipient.error).where(
                CampaignRecipient.campaign_id == cid, CampaignRecipient.status == "skipped"
            )
        ).all()
    assert errors == ["over the campaign's SMS cap"]


def test_a_change_drops_the_estimate_and_a_wallet_campaign_has_none(
    shop: Shop, fake_smsru: smsru.FakeSmsRu
) -> None:
    program = shop.program("bonus")
    shop.card(program, marketing_consent=True)
    cid = shop.post(
        "/api/v1/campaigns", {"name": "x", "header": "h", "body": "b", "channel": "sms", "cap_cost": 1000}
    ).json()["id"]
    assert shop.post(f"/api/v1/campaigns/{cid}/sms-estimate").status_code == 200
    assert shop.call("PATCH", f"/api/v1/campaigns/{cid}", json={"body": "longer text"}).status_code == 200
    assert "estimate" not in shop.get(f"/api/v1/campaigns/{cid}").json()["sms"]
    r = shop.post(f"/api/v1/campaigns/{cid}/send")
    assert r.status_code == 409

    wallet = shop.post("/api/v1/campaigns", {"name": "w", "header": "h", "body": "b"}).json()["id"]
    r = shop.post(f"/api/v1/campaigns/{wallet}/sms-estimate")
    assert r.status_code == 409
    assert shop.post("/api/v1/campaigns/999999999/sms-estimate").status_code == 404
    assert shop.post(f"/api/v1/campaigns/{cid}/sms-estimate", role="cashier").status_code == 403


def test_sms_campaign_from_the_admin_pages(shop: Shop, fake_smsru: smsru.FakeSmsRu, app: object) -> None:
    from staff_support import add_staff, login, page_csrf

    program = shop.program("bonus")
    phone = random_phone()
    shop.card(program, phone=phone, marketing_consent=True)
    manager = login(app, add_staff(shop, "manager"))
    csrf = page_csrf(manager, "/admin/campaigns")
    r = manager.post(
        "/admin/campaigns",
        data={
            "csrf": csrf,
            "name": "<script>x</script>",
            "header": "Скидка",
            "body": "Сегодня",
            "send_channel": "sms",
            "cap_cost_rub": "50",
            "when": "draft",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    cid = shop.get("/api/v1/campaigns").json()["items"][0]["id"]
    page = manager.get(f"/admin/campaigns/{cid}").text
    assert "<script>x</script>" not in page and 'id="c-estimate"' in page
    r = manager.post(f"/admin/campaigns/{cid}/sms-estimate", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303
    page = manager.get(f"/admin/campaigns/{cid}").text
    assert "data-estimate" in page and "3.45" in page
    assert shop.get(f"/api/v1/campaigns/{cid}").json()["sms"]["cap_cost"] == 5000
    r = manager.post(f"/admin/campaigns/{cid}/send", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303
    worker.drain()
    assert fake_smsru.last_to(phone) is not None


def test_the_console_provider_estimates_at_no_cost(shop: Shop) -> None:
    """Without SMS.ru (development), the estimate counts the parts and costs nothing."""
    from loyalwallet.enrollment.sms import console

    program = shop.program("bonus")
    phone = random_phone()
    shop.card(program, phone=phone, marketing_consent=True)
    body = "Длинное сообщение. " * 5  # 95 Cyrillic characters: two parts
    cid = shop.post(
        "/api/v1/campaigns", {"name": "x", "header": "h", "body": body.strip(), "channel": "sms"}
    ).json()["id"]
    est = shop.post(f"/api/v1/campaigns/{cid}/sms-estimate").json()
    assert (est["recipients"], est["messages"], est["cost"]) == (1, 2, 0), est
    assert shop.post(f"/api/v1/campaigns/{cid}/send").status_code == 200
    worker.drain()
    assert console.last_to(phone) is not None
