"""Triggers: on schedule in the merchant's time zone (birthday, expiring points, lapsed
guest, happy hour) and on events (welcome, tier up); each fires once per occasion."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from loyalwallet import db
from loyalwallet.campaigns import triggers
from loyalwallet.campaigns.models import TriggerFiring
from loyalwallet.cards.models import Card, Coupon
from loyalwallet.merchants.models import Merchant
from loyalwallet.outbox import worker
from support import Shop


def _noon_zone(shop: Shop) -> ZoneInfo:
    """Give the merchant a time zone where it is about noon now, so schedules are due."""
    offset = 12 - db.utcnow().hour  # UTC+offset; Etc/GMT signs are inverted
    name = "Etc/GMT" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"
    with db.transaction() as session:
        session.execute(update(Merchant).where(Merchant.id == shop.merchant_id).values(timezone=name))
    return ZoneInfo(name)


def _trigger(shop: Shop, kind: str, params: dict, **extra) -> dict:
    body = {
        "kind": kind,
        "params": {"message": {"header": "Hi", "body": "Hello"}, "send_at": "00:00", **params},
        **extra,
    }
    r = shop.post("/api/v1/triggers", body, role="manager")
    assert r.status_code == 201, r.text
    return r.json()


def _tick() -> None:
    """What the worker's periodic job and loop do: queue due runs, deliver everything."""
    triggers.schedule_due()
    worker.drain()


def _card(shop: Shop, code: str) -> Card:
    with db.read() as session:
        return session.scalars(
            select(Card).where(Card.merchant_id == shop.merchant_id, Card.code == code)
        ).one()


def _firings(trigger_id: int) -> list[tuple[int, str]]:
    with db.read() as session:
        return list(
            session.execute(
                select(TriggerFiring.card_id, TriggerFiring.occasion).where(
                    TriggerFiring.trigger_id == trigger_id
                )
            ).all()
        )


def _unrun(trigger_id: int) -> None:
    """As if the next day came: the trigger may run again."""
    from loyalwallet.campaigns.models import Trigger

    with db.transaction() as session:
        session.execute(
            update(Trigger).where(Trigger.id == trigger_id).values(last_run_on=None, next_run_at=db.utcnow())
        )


def test_birthday_gift_fires_once_per_year(shop: Shop) -> None:
    tz = _noon_zone(shop)
    bonus = shop.program("bonus", {**_rules(), "birthday_points": 200})
    local_today = db.utcnow().astimezone(tz).date()
    in_two_days = (local_today + dt.timedelta(days=2)).replace(year=1992)
    far = (local_today + dt.timedelta(days=20)).replace(year=1992)
    guest = shop.card(bonus, birthday=in_two_days.isoformat())
    other = shop.card(bonus, birthday=far.isoformat())
    trig = _trigger(
        shop,
        "birthday",
        {
            "days_before": 3,
            "message": {"header": "Happy birthday", "body": "{points} points for your birthday on {date}"},
        },
    )
    _tick()
    card = _card(shop, guest["code"])
    assert card.balance == 200
    assert card.message == f"200 points for your birthday on {in_two_days:%d.%m}"
    assert _card(shop, other["code"]).message is None
    # The next day the birthday is still in the window: no second gift.
    _unrun(trig["id"])
    _tick()
    assert _card(shop, guest["code"]).balance == 200
    assert len(_firings(trig["id"])) == 1
    view = shop.get(f"/api/v1/triggers/{trig['id']}", role="manager").json()
    assert view["fired"] == 1 and view["last_run_on"] is not None
    # Once per day: a second tick the same day queues nothing.
    assert triggers.schedule_due() == 0


def _rules() -> dict:
    from support import DEFAULT_RULES

    return dict(DEFAULT_RULES["bonus"])


def test_points_expiring(shop: Shop) -> None:
    _noon_zone(shop)
    bonus = shop.program("bonus", {**_rules(), "ttl_days": 5})
    card = shop.card(bonus)
    shop.buy(card["code"], 100_000)  # 50 points expiring in 5 days
    long_lived = shop.card(shop.program("bonus", {**_rules(), "ttl_days": 60}))
    shop.buy(long_lived["code"], 100_000)
    trig = _trigger(
        shop,
        "points_expiring",
        {"days_before": 7, "message": {"header": "Points", "body": "{points} points expire on {date}"}},
    )
    _tick()
    assert _card(shop, card["code"]).message.startswith("50 points expire on ")
    assert _card(shop, long_lived["code"]).message is None
    _unrun(trig["id"])
    _tick()
    assert len(_firings(trig["id"])) == 1


def test_lapsed_guest_once_per_lapse_and_only_with_consent(shop: Shop) -> None:
    _noon_zone(shop)
    bonus = shop.program("bonus")
    gone = shop.card(bonus, marketing_consent=True)
    silent = shop.card(bonus, marketing_consent=False)
    regular = shop.card(bonus, marketing_consent=True)
    for c in (gone, silent, regular):
        shop.buy(c["code"], 10_000)
    with db.transaction() as session:
        session.execute(
            update(Card)
            .where(Card.code.in_([gone["code"], silent["code"]]), Card.merchant_id == shop.merchant_id)
            .values(last_visit_at=db.utcnow() - dt.timedelta(days=40))
        )
    offer = shop.post(
        "/api/v1/offers", {"name": "Coffee on us", "kind": "free_item", "valid_days": 7}, role="manager"
    ).json()
    trig = _trigger(
        shop,
        "lapsed",
        {
            "days": 30,
            "offer_id": offer["id"],
            "message": {"header": "We miss you", "body": "{days} days! A coffee is waiting ({days_text})"},
        },
    )
    _tick()
    assert _card(shop, gone["code"]).message == "40 days! A coffee is waiting (40 дней)"
    assert _card(shop, silent["code"]).message is None  # no marketing consent
    assert _card(shop, regular["code"]).message is None
    with db.read() as session:
        assert session.query(Coupon).filter(Coupon.offer_id == offer["id"]).count() == 1
    _unrun(trig["id"])
    _tick()
    assert len(_firings(trig["id"])) == 1
    # They came back, then lapsed again: a new occasion.
    shop.buy(gone["code"], 10_000)
    with db.transaction() as session:
        session.execute(
            update(Card)
            .where(Card.code == gone["code"], Card.merchant_id == shop.merchant_id)
            .values(last_visit_at=db.utcnow() - dt.timedelta(days=35))
        )
    _unrun(trig["id"])
    _tick()
    assert len(_firings(trig["id"])) == 2


def test_happy_hour_offer_lasts_until_the_window_ends(shop: Shop) -> None:
    tz = _noon_zone(shop)
    bonus = shop.program("bonus")
    guest = shop.card(bonus, marketing_consent=True)
    shop.card(bonus, marketing_consent=False)
    offer = shop.post(
        "/api/v1/offers", {"name": "-20 %", "kind": "percent_off", "pct": 20}, role="manager"
    ).json()
    local = db.utcnow().astimezone(tz)
    window = {"weekdays": [local.isoweekday()], "start": "09:00", "end": "15:00"}
    trig = _trigger(
        shop,
        "happy_hour",
        {**window, "offer_id": offer["id"], "message": {"header": "Happy hour", "body": "-20 % until {end}"}},
    )
    _tick()
    assert _card(shop, guest["code"]).message == "-20 % until 15:00"
    [coupon] = shop.get(f"/api/v1/coupons?offer_id={offer['id']}", role="manager").json()["items"]
    until = dt.datetime.fromisoformat(coupon["valid_until"]).astimezone(tz)
    assert (until.date(), until.hour, until.minute) == (local.date(), 15, 0)
    assert len(_firings(trig["id"])) == 1
    # Another weekday only: nothing today.
    other = _trigger(shop, "happy_hour", {**window, "weekdays": [local.isoweekday() % 7 + 1]})
    _tick()
    assert _firings(other["id"]) == []


def test_welcome_and_tier_up(shop: Shop) -> None:
    bonus = shop.program("bonus")
    welcome = _trigger(
        shop,
        "welcome",
        {"points": 30, "message": {"header": "Welcome", "body": "Glad to see you"}},
        program_id=bonus,
    )
    up = _trigger(shop, "tier_up", {"message": {"header": "New tier", "body": "You are {tier} now"}})
    card = shop.card(bonus)
    worker.drain()
    assert _card(shop, card["code"]).message == "Glad to see you"
    assert shop.get(f"/api/v1/cards/{card['code']}").json()["balance"] == 30
    bought = shop.buy(card["code"], 1_200_000)
    worker.drain()
    assert _card(shop, card["code"]).message == "You are Silver now"
    # Back down by a refund: no congratulations; up again later: already congratulated.
    shop.post(f"/api/v1/purchases/{bought['id']}/refunds", {}, role="manager")
    worker.drain()
    assert _card(shop, card["code"]).message == "You are Silver now"
    shop.buy(card["code"], 1_200_000)
    worker.drain()
    assert len(_firings(up["id"])) == 1 and len(_firings(welcome["id"])) == 1
    # Another program's card: the welcome trigger is for `bonus` only.
    stamp_card = shop.card(shop.program("stamp"))
    worker.drain()
    assert _card(shop, stamp_card["code"]).message is None
    # A card issued before a trigger was made, its event still queued: no welcome.
    late = shop.card(bonus)
    again = _trigger(shop, "welcome", {"message": {"header": "Hi", "body": "Hello"}}, program_id=bonus)
    worker.drain()
    assert _card(shop, late["code"]).message == "Glad to see you" and _firings(again["id"]) == []


def test_trigger_api(shop: Shop) -> None:
    bad = shop.post(
        "/api/v1/triggers",
        {
            "kind": "happy_hour",
            "params": {
                "message": {"header": "H", "body": "B"},
                "weekdays": [6],
                "start": "18:00",
                "end": "18:00",
            },
        },
        role="manager",
    )
    assert bad.status_code == 422 and bad.json()["code"] == "empty_window"
    bad = shop.post(
        "/api/v1/triggers",
        {"kind": "lapsed", "params": {"message": {"header": "H", "body": "B"}, "send_at": "7am"}},
        role="manager",
    )
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_time"
    assert bad.json()["errors"][0]["loc"] == ["params", "send_at"]
    assert shop.get("/api/v1/triggers", role="manager").json()["items"] == []  # nothing written
    t = _trigger(shop, "lapsed", {"days": 30})
    assert t["scheduled"] and t["marketing"]
    r = shop.call(
        "PATCH",
        f"/api/v1/triggers/{t['id']}",
        role="manager",
        json={"enabled": False, "params": {"message": {"header": "H", "body": "B"}, "days": 60}},
    )
    assert r.status_code == 200 and r.json()["enabled"] is False and r.json()["params"]["days"] == 60
    assert shop.post(f"/api/v1/triggers/{t['id']}/run", role="manager").status_code == 202
    welcome = _trigger(shop, "welcome", {})
    assert shop.post(f"/api/v1/triggers/{welcome['id']}/run", role="manager").json()["code"] == "conflict"
    assert len(shop.get("/api/v1/triggers", role="manager").json()["items"]) == 2
    assert shop.get("/api/v1/triggers", role="cashier").status_code == 403
    assert shop.call("DELETE", f"/api/v1/triggers/{t['id']}", role="manager").status_code == 204
    assert shop.get(f"/api/v1/triggers/{t['id']}", role="manager").json()["archived"] is True
    assert [i["id"] for i in shop.get("/api/v1/triggers", role="manager").json()["items"]] == [welcome["id"]]


def _zone_at(shop: Shop, hour: int) -> ZoneInfo:
    """Give the merchant a time zone where it is about `hour` o'clock now."""
    offset = hour - db.utcnow().hour
    offset = offset + 24 if offset < -12 else offset - 24 if offset > 14 else offset
    name = "Etc/GMT" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"
    with db.transaction() as session:
        session.execute(update(Merchant).where(Merchant.id == shop.merchant_id).values(timezone=name))
    return ZoneInfo(name)


def test_a_happy_hour_past_midnight_fires_in_its_night(shop: Shop) -> None:
    tz = _zone_at(shop, 0)  # just past local midnight
    bonus = shop.program("bonus")
    guest = shop.card(bonus, marketing_consent=True)
    offer = shop.post(
        "/api/v1/offers", {"name": "Night -30 %", "kind": "percent_off", "pct": 30}, role="manager"
    ).json()
    local = db.utcnow().astimezone(tz)
    started = local.date() - dt.timedelta(days=1)  # the night began yesterday evening
    night = {"start": "20:00", "end": "04:00", "message": {"header": "Night", "body": "-30 % until {end}"}}
    trig = _trigger(
        shop, "happy_hour", {**night, "weekdays": [started.isoweekday()], "offer_id": offer["id"]}
    )
    # Tonight's window belongs to today's weekday and opens at 20:00: not yet.
    tonight = _trigger(shop, "happy_hour", {**night, "weekdays": [local.isoweekday()]})
    _tick()
    card_id = _card(shop, guest["code"]).id
    assert _firings(trig["id"]) == [(card_id, f"happy_hour:{started.isoformat()}")]
    assert _firings(tonight["id"]) == []
    assert _card(shop, guest["code"]).message == "-30 % until 04:00"
    [coupon] = shop.get(f"/api/v1/coupons?offer_id={offer['id']}", role="manager").json()["items"]
    until = dt.datetime.fromisoformat(coupon["valid_until"]).astimezone(tz)
    assert (until.date(), until.hour, until.minute) == (local.date(), 4, 0)  # this morning
    # Later in the same night: the window already ran.
    _tick()
    assert len(_firings(trig["id"])) == 1
    assert (
        shop.get(f"/api/v1/triggers/{trig['id']}", role="manager").json()["last_run_on"]
        == started.isoformat()
    )


def test_deleting_a_trigger_archives_it_and_keeps_its_history(shop: Shop) -> None:
    bonus = shop.program("bonus")
    welcome = _trigger(shop, "welcome", {"points": 10}, program_id=bonus)
    first = shop.card(bonus)
    worker.drain()
    assert len(_firings(welcome["id"])) == 1
    assert shop.call("DELETE", f"/api/v1/triggers/{welcome['id']}", role="manager").status_code == 204
    assert len(_firings(welcome["id"])) == 1  # who got what stays
    assert shop.get("/api/v1/triggers", role="manager").json()["items"] == []
    [archived] = shop.get("/api/v1/triggers?include_archived=true", role="manager").json()["items"]
    assert archived["archived"] and archived["archived_at"] and not archived["enabled"]
    assert archived["fired"] == 1
    # An archived trigger never fires, and cannot be switched on or changed.
    second = shop.card(bonus)
    worker.drain()
    assert shop.get(f"/api/v1/cards/{second['code']}").json()["balance"] == 0
    r = shop.call("PATCH", f"/api/v1/triggers/{welcome['id']}", role="manager", json={"enabled": True})
    assert r.status_code == 409 and r.json()["code"] == "trigger_archived"
    assert shop.call("DELETE", f"/api/v1/triggers/{welcome['id']}", role="manager").status_code == 204
    # Restored, switched off; switched on it fires again, still once per guest.
    r = shop.post(f"/api/v1/triggers/{welcome['id']}/restore", role="manager")
    assert r.status_code == 200 and r.json()["archived"] is False and r.json()["enabled"] is False
    shop.call("PATCH", f"/api/v1/triggers/{welcome['id']}", role="manager", json={"enabled": True})
    third = shop.card(bonus)
    worker.drain()
    assert shop.get(f"/api/v1/cards/{third['code']}").json()["balance"] == 10
    assert shop.get(f"/api/v1/cards/{first['code']}").json()["balance"] == 10
    audit = shop.get("/api/v1/audit?target_type=trigger").json()["items"]
    assert {"trigger.archive", "trigger.restore"} <= {a["action"] for a in audit}


def test_an_archived_scheduled_trigger_does_not_run(shop: Shop) -> None:
    _noon_zone(shop)
    bonus = shop.program("bonus")
    gone = shop.card(bonus, marketing_consent=True)
    with db.transaction() as session:
        session.execute(
            update(Card)
            .where(Card.code == gone["code"], Card.merchant_id == shop.merchant_id)
            .values(last_visit_at=db.utcnow() - dt.timedelta(days=40))
        )
    trig = _trigger(shop, "lapsed", {"days": 30})
    assert shop.post(f"/api/v1/triggers/{trig['id']}/run", role="manager").status_code == 202
    shop.call("DELETE", f"/api/v1/triggers/{trig['id']}", role="manager")
    _tick()  # the run queued before the archive finds it archived
    assert _firings(trig["id"]) == []
    r = shop.post(f"/api/v1/triggers/{trig['id']}/run", role="manager")
    assert r.status_code == 409 and r.json()["code"] == "trigger_archived"


def test_points_text_agrees_with_the_count(shop: Shop) -> None:
    """{points} cannot agree with the word after it ("21 баллов"); {points_text} is the count
    with its word in the café's language."""
    tz = _noon_zone(shop)
    bonus = shop.program("bonus", {**_rules(), "birthday_points": 21})
    birthday = (db.utcnow().astimezone(tz).date() + dt.timedelta(days=1)).replace(year=1992)
    guest = shop.card(bonus, birthday=birthday.isoformat())
    _trigger(
        shop, "birthday", {"days_before": 3, "message": {"header": "ДР", "body": "{points_text} в подарок"}}
    )
    _tick()
    assert _card(shop, guest["code"]).message == "21 балл в подарок"
