"""r_keeper asks loyalwallet through FarCards' HTTP protocol: a scanned card's info, a
closed check booked once (and the pass following it), a cancelled check reversed, and
every kind of bad call answered in FarCards' format with nothing written."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from fakes.wallet_device import open_pkpass
from integrations.rkeeper.conftest import RkShop
from loyalwallet import db
from loyalwallet.checkout.models import Purchase
from loyalwallet.integrations.rkeeper.models import RkeeperCheck, RkeeperConnection
from loyalwallet.outbox import worker
from loyalwallet.outbox.models import OutboxMessage
from loyalwallet.wallet.apple import credentials
from support import random_phone


def _card(rk: RkShop, phone: str | None = None, name: str = "Анна Кузнецова") -> dict[str, Any]:
    return rk.shop.card(rk.program_id, phone or random_phone(), name=name)


def _view(rk: RkShop, code: str) -> dict[str, Any]:
    r = rk.shop.get(f"/api/v1/cards/{code}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def _count(model: Any, merchant_id: int) -> int:
    with db.read() as session:
        return int(
            session.scalar(select(func.count()).select_from(model).where(model.merchant_id == merchant_id))
            or 0
        )


def _purchases(rk: RkShop) -> list[Purchase]:
    with db.read() as session:
        return list(
            session.scalars(
                select(Purchase)
                .where(Purchase.merchant_id == rk.merchant_id, Purchase.external_id.like("rkeeper:%"))
                .order_by(Purchase.id)
            )
        )


def test_a_scanned_card_answers_holder_points_and_the_tiers_numbers(rk: RkShop) -> None:
    card = _card(rk)
    rk.shop.buy(card["code"], 200_000)  # 10 % cashback: 200 points
    info = rk.till.card_info(card["code"])
    assert info.status == 200 and info.result == 0
    assert info.attrs["Holder"] == "Анна К."  # masked as the till shows it, never the full name
    assert info.int("Summa") == 200 * 100  # kopecks the card's account may pay
    assert (info.int("Discount"), info.int("Bonus")) == (3, 1)  # tier Base → r_keeper's numbers
    assert info.attrs["Locked"] == "0"
    assert "200" in info.attrs["ShowInfo"] and "Base" in info.attrs["ShowInfo"]


def test_a_phone_typed_as_the_card_number_finds_the_card(rk: RkShop) -> None:
    phone = random_phone()
    card = _card(rk, phone)
    by_phone = rk.till.card_info(phone.lstrip("+"))
    assert by_phone.result == 0
    assert by_phone.int("Account") == rk.till.card_info(card["code"]).int("Account")


def test_an_unknown_card_is_result_1(rk: RkShop) -> None:
    info = rk.till.card_info("1234567890128")
    assert info.status == 200 and info.result == 1 and info.attrs["ErrorCode"] == "card_not_found"


def test_a_blocked_card_is_locked_with_a_reason(rk: RkShop) -> None:
    card = _card(rk)
    r = rk.shop.call("PATCH", f"/api/v1/cards/{card['code']}", json={"status": "blocked", "reason": "lost"})
    assert r.status_code == 200, r.text
    info = rk.till.card_info(card["code"])
    assert info.result == 0 and info.attrs["Locked"] == "1" and info.attrs["WhyLock"]
    assert info.int("Summa") == 0


def test_a_closed_check_is_a_purchase_and_the_pass_follows(rk: RkShop) -> None:
    with db.transaction() as session:  # passes signed with the development certificate
        credentials.ensure_development_certificate(session)
    card = _card(rk)
    answer, _no, _guid = rk.till.close_check(card["code"], 35_000)
    assert answer.status == 200 and answer.result == 0
    booked = _purchases(rk)
    assert len(booked) == 1 and booked[0].amount == 35_000
    assert _view(rk, card["code"])["balance"] == 35  # 10 % of 350 ₽, by our programme's rules
    worker.drain()
    with db.read() as session:
        changed = session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.merchant_id == rk.merchant_id, OutboxMessage.topic == "card.changed"
            )
        ).all()
    assert changed and all(m.status == "done" for m in changed)  # heard by the Apple and Google listeners
    pj = open_pkpass(rk.shop.client.get(card["apple_pass_url"]).content).pass_json
    fields = {f["key"]: f for part in pj["storeCard"].values() if isinstance(part, list) for f in part}
    assert fields["balance"]["value"] == 35
    assert pj["barcodes"][0]["message"] == card["code"]  # what r_keeper's scanner reads


def test_a_repeated_check_is_booked_once(rk: RkShop) -> None:
    card = _card(rk)
    first, check_no, guid = rk.till.close_check(card["code"], 35_000)
    again, _, _ = rk.till.close_check(card["code"], 35_000, check_no=check_no, guid=guid)
    assert first.result == 0 and again.result == 0  # r_keeper hears "done" both times
    assert len(_purchases(rk)) == 1
    assert _view(rk, card["code"])["balance"] == 35


def test_paying_with_points_redeems_them(rk: RkShop) -> None:
    card = _card(rk)
    rk.shop.buy(card["code"], 200_000)  # 200 points
    answer, _, _ = rk.till.close_check(card["code"], 30_000, paid_from_card=10_000)  # 100 ₽ from the card
    assert answer.result == 0
    purchase = _purchases(rk)[-1]
    assert purchase.amount == 40_000 and purchase.points_redeemed == 100
    assert rk.till.card_info(card["code"]).int("Summa") < 200 * 100


def test_a_cancelled_check_is_refunded_once(rk: RkShop) -> None:
    card = _card(rk)
    _, check_no, guid = rk.till.close_check(card["code"], 35_000)
    assert _view(rk, card["code"])["balance"] == 35
    storno = rk.till.cancel_check(card["code"], 35_000, check_no=check_no, guid=guid)
    assert storno.result == 0
    assert _view(rk, card["code"])["balance"] == 0
    assert rk.till.cancel_check(card["code"], 35_000, check_no=check_no, guid=guid).result == 0
    assert _view(rk, card["code"])["balance"] == 0
    with db.read() as session:
        states = session.scalars(
            select(RkeeperCheck.state).where(RkeeperCheck.merchant_id == rk.merchant_id)
        ).all()
    assert states == ["reversed"]


def test_a_wrong_secret_is_refused_and_nothing_is_written(rk: RkShop) -> None:
    card = _card(rk)
    query = f'<ROOT><QRY Card="{card["code"]}"/></ROOT>'.encode()
    wrong = f"/integrations/rkeeper/{rk.merchant_id}/not-the-secret"
    r = rk.till.post("GetCardInfoEx", query, address=wrong)
    assert r.status == 401 and r.result == 1 and r.attrs["ErrorCode"] == "unauthorized"
    other = f"/integrations/rkeeper/{rk.merchant_id + 10_000}/{rk.secret}"
    assert rk.till.post("GetCardInfoEx", query, address=other).attrs["ErrorCode"] == "unauthorized"
    odd = f"/integrations/rkeeper/{rk.merchant_id}x/{rk.secret}"
    assert rk.till.post("GetCardInfoEx", query, address=odd).status == 401
    rk.till.address = wrong
    r, _, _ = rk.till.close_check(card["code"], 35_000)
    assert r.status == 401 and r.attrs["ErrorCode"] == "unauthorized"
    assert _purchases(rk) == [] and _count(RkeeperCheck, rk.merchant_id) == 0


def test_bad_xml_is_answered_in_farcards_format_and_nothing_is_written(rk: RkShop) -> None:
    card = _card(rk)
    bombs = [
        b"",
        b"<ROOT><QRY Card=",
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><ROOT><QRY Card="&a;"/></ROOT>',
        b'<ROOT><QRY Card="12ab"/></ROOT>',
        b"<ROOT><Other/></ROOT>",
    ]
    for body in bombs:
        r = rk.till.post("GetCardInfoEx", body)
        assert r.status == 400 and r.result == 1, body
        assert r.attrs["ErrorCode"] in {"malformed_xml", "validation_error"}
    broken = [
        b"<ROOT><Transactions/></ROOT>",
        f'<ROOT><Transactions><TransactionsEx Card="{card["code"]}" Kind="9" Summa="100" Restaurant="1" '
        'RKDate="2026-12-07T00:00:00" RKUnit="1" RKCheck="1"/></Transactions></ROOT>'.encode(),
        f'<ROOT><Transactions><TransactionsEx Card="{card["code"]}" Kind="3" Summa="1.5" Restaurant="1" '
        'RKDate="2026-12-07T00:00:00" RKUnit="1" RKCheck="1"/></Transactions></ROOT>'.encode(),
    ]
    for body in broken:
        r = rk.till.post("TransactionsEx", body)
        assert r.status == 400 and r.result == 1 and r.attrs["ErrorCode"] == "validation_error", body
    assert _purchases(rk) == [] and _count(RkeeperCheck, rk.merchant_id) == 0
    with db.read() as session:
        conn = session.scalar(
            select(RkeeperConnection).where(RkeeperConnection.merchant_id == rk.merchant_id)
        )
        assert conn is not None and conn.last_error and "TransactionsEx" in conn.last_error


def test_a_check_of_an_unknown_card_or_too_many_points_books_nothing(rk: RkShop) -> None:
    card = _card(rk)
    r, _, _ = rk.till.close_check("1234567890128", 10_000)
    assert r.status == 200 and r.result == 1 and r.attrs["ErrorCode"] == "card_not_found"
    r, _, _ = rk.till.close_check(card["code"], 10_000, paid_from_card=5_000)  # the card has no points
    assert r.result == 1 and r.attrs["ErrorCode"] in {"insufficient_points", "redeem_limit_exceeded"}
    assert _purchases(rk) == [] and _count(RkeeperCheck, rk.merchant_id) == 0
    assert _view(rk, card["code"])["balance"] == 0


def test_a_partial_cancellation_refunds_its_share(rk: RkShop) -> None:
    card = _card(rk)
    _, check_no, guid = rk.till.close_check(card["code"], 40_000)
    assert _view(rk, card["code"])["balance"] == 40
    assert rk.till.cancel_check(card["code"], 10_000, check_no=check_no, guid=guid).result == 0
    assert _view(rk, card["code"])["balance"] == 30  # a quarter of the check, a quarter of the points
    purchase = _purchases(rk)[-1]
    assert purchase.refunded_amount == 10_000


def test_a_deleting_check_with_its_own_number_finds_the_check_by_guid(rk: RkShop) -> None:
    card = _card(rk)
    _, check_no, guid = rk.till.close_check(card["code"], 35_000)
    storno = rk.till.cancel_check(card["code"], 35_000, check_no=check_no + 500, guid=guid)
    assert storno.result == 0
    assert _view(rk, card["code"])["balance"] == 0
    unknown = rk.till.cancel_check(card["code"], 5_000, check_no=9_999, guid="{0000-UNKNOWN}")
    assert unknown.result == 0  # nothing of ours to reverse: accepted, recorded as skipped
    with db.read() as session:
        states = sorted(
            session.scalars(
                select(RkeeperCheck.state).where(RkeeperCheck.merchant_id == rk.merchant_id)
            ).all()
        )
    assert states == ["reversed", "skipped"]


def test_a_discount_programme_answers_its_tier_and_percentage(rk: RkShop) -> None:
    from loyalwallet.integrations.rkeeper import service

    program = rk.shop.program("discount")
    with db.transaction() as session:
        service.connect(session, rk.merchant_id, program, tiers={"Base": {"discount": 11}})
    card = rk.shop.card(program, random_phone(), name="Пётр")
    info = rk.till.card_info(card["code"])
    assert info.result == 0 and info.int("Discount") == 11 and info.int("Summa") == 0
    assert info.attrs["Holder"] == "Пётр" and "5%" in info.attrs["ShowInfo"]
    answer, _, _ = rk.till.close_check(card["code"], 95_000, discount=5_000)  # r_keeper gave 5 %
    assert answer.result == 0
    assert _purchases(rk)[-1].amount == 100_000  # the check before the discount, priced by our rules
    assert _view(rk, card["code"])["spend"] == 95_000  # the same 5 % in our ledger


def test_a_stamp_programme_counts_a_stamp_per_check(rk: RkShop) -> None:
    from loyalwallet.integrations.rkeeper import service

    program = rk.shop.program("stamp")
    with db.transaction() as session:
        service.connect(session, rk.merchant_id, program)
    card = rk.shop.card(program, random_phone())
    answer, _, _ = rk.till.close_check(card["code"], 25_000)
    assert answer.result == 0 and _view(rk, card["code"])["stamps"] == 1
    info = rk.till.card_info(card["code"])
    assert info.result == 0 and info.int("Summa") == 0 and info.attrs["ShowInfo"].startswith("1 штамп")
