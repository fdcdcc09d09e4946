"""Referral: every card's share link; the friend's join records the referrer; both get the
programme's points on the friend's first purchase, once, and never for oneself."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select

from enrollment_support import BONUS_RULES, join, sms_code, start
from loyalwallet import crypto, db
from loyalwallet.enrollment.models import Join
from loyalwallet.outbox import worker
from support import random_phone


def _share_link(client: TestClient, card_path: str) -> str:
    page = client.get(card_path)
    match = re.search(r'value="http://testserver(/r/[0-9a-f]+-[0-9a-f]{12})"', page.text)
    assert match, "no share link on the card page"
    return match.group(1)


def _ref_join(client: TestClient, pid: int, link: str, phone: str, **fields: str) -> str:
    r = client.get(link, follow_redirects=False)
    assert r.status_code == 303
    target = r.headers["location"]
    assert "ref=" in target and "utm_source=referral" in target
    ref = re.search(r"ref=([^&]+)", target).group(1)  # type: ignore[union-attr]
    verify = start(client, pid, phone, ref=ref, utm_source="referral", utm_medium="share", **fields)
    client.post(verify, data={"code": sms_code(phone)})
    return ref


def _verdicts(pid: int) -> list[str | None]:
    with db.read() as session:
        return list(session.scalars(select(Join.referral).where(Join.program_id == pid).order_by(Join.id)))


def test_friend_join_and_first_purchase_reward_both(client: TestClient, shop) -> None:
    pid = shop.program("bonus", BONUS_RULES)
    alice = random_phone()
    _, alice_card = join(client, pid, alice, name="Alice")
    link = _share_link(client, alice_card)
    friend_client = TestClient(client.app, client=(f"192.0.2.{crypto.token(2)}", 1))
    bob = random_phone()
    _ref_join(friend_client, pid, link, bob, name="Bob")
    bob_card = shop.get(f"/api/v1/cards?phone={bob}").json()["items"][0]
    alice_before = shop.get(f"/api/v1/cards?phone={alice}").json()["items"][0]
    assert _verdicts(pid)[-1] == "accepted"

    shop.buy(bob_card["code"], 10000)
    worker.drain()
    shop.buy(bob_card["code"], 10000)  # a second purchase pays nothing more
    worker.drain()
    alice_after = shop.get(f"/api/v1/cards?phone={alice}").json()["items"][0]
    assert alice_after["balance"] == alice_before["balance"] + 50
    history = shop.get(f"/api/v1/cards/{bob_card['code']}/transactions").json()["items"]
    assert [e["kind"] for e in history if e.get("kind") == "referral"] == ["referral"]
    with db.read() as session:
        from loyalwallet.cards.models import Card

        row = session.scalar(select(Card).where(Card.code == bob_card["code"]))
        assert row is not None and row.channel == "referral"


def test_self_existing_and_same_device_referrals_are_refused(client: TestClient, shop) -> None:
    pid = shop.program("bonus", BONUS_RULES)
    alice = random_phone()
    _, alice_card = join(client, pid, alice)
    link = _share_link(client, alice_card)
    # Her own phone through her own link: she gets her existing card, no referral.
    _ref_join(TestClient(client.app, client=("192.0.2.200", 1)), pid, link, alice)
    assert _verdicts(pid)[-1] == "rejected:self"
    # A guest who already had a card.
    carol = random_phone()
    join(client, pid, carol)
    _ref_join(TestClient(client.app, client=("192.0.2.201", 1)), pid, link, carol)
    assert _verdicts(pid)[-1] == "rejected:existing"
    # A second number typed on the phone Alice joined from (same device cookie).
    _ref_join(client, pid, link, random_phone())
    assert _verdicts(pid)[-1] == "rejected:device"
    # Friends on one Wi-Fi: two a day are fine, the third is not.
    cafe = f"192.0.2.{crypto.token(2)}"
    for expected in ("accepted", "accepted", "rejected:ip"):
        _ref_join(TestClient(client.app, client=(cafe, 1)), pid, link, random_phone())
        assert _verdicts(pid)[-1] == expected
    with db.read() as session:
        refused = session.scalars(
            select(Join).where(Join.program_id == pid, Join.referral.like("rejected%"))
        ).all()
        from loyalwallet.cards.models import Card

        for j in refused:
            card = session.get(Card, j.card_id)
            assert card is not None and (card.referrer_card_id is None or not j.created)


def test_forged_share_links_and_programs_without_referral(client: TestClient, shop) -> None:
    pid = shop.program("bonus", BONUS_RULES)
    _, card_path = join(client, pid, random_phone())
    link = _share_link(client, card_path)
    head, tag = link.rsplit("/", 1)[1].split("-")
    forged = f"/r/{int(head, 16) + 1:x}-{tag}"
    assert client.get(forged, follow_redirects=False).status_code == 404
    assert client.get("/r/garbage", follow_redirects=False).status_code == 404
    stamp = shop.program("stamp", {"stamps_required": 6})
    _, stamp_card = join(client, stamp, random_phone())
    assert "/r/" not in client.get(stamp_card).text  # nothing to share: no referral points
