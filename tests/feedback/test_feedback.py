"""Visit feedback as a guest and an owner meet it: the card's invitation after a purchase,
the rating page (one answer per purchase, editable for 24 h), the owner's Telegram alert
on a low score, review links after a 5, points for answering whatever the score, and
bad input: forged and reused links, a second answer, script in a comment."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select, update

from fakes.telegram import FakeTelegram
from feedback_support import buy_and_invite, card_row, enable, telegram
from loyalwallet import db
from loyalwallet.cards.models import Card
from loyalwallet.feedback.models import Feedback
from loyalwallet.outbox import worker
from support import Shop, new_shop

SCRIPT = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _answers(shop: Shop) -> list[Feedback]:
    with db.read() as session:
        rows = list(session.scalars(select(Feedback).where(Feedback.merchant_id == shop.merchant_id)))
        for row in rows:
            session.expunge(row)
        return rows


def _post(
    shop: Shop, path: str, score: object, problems: list[str] | None = None, comment: str = ""
) -> object:
    data: dict[str, object] = {"score": str(score), "comment": comment}
    if problems:
        data["problems"] = problems
    return shop.client.post(path + "?lang=en", data=data, follow_redirects=False)


def test_a_purchase_invites_a_low_score_alerts_the_owner_and_text_stays_text(
    shop: Shop, tg: FakeTelegram
) -> None:
    program = shop.program("bonus")
    enable(shop)
    telegram(shop)
    code = shop.card(program)["code"]
    path, purchase_id = buy_and_invite(shop, code)
    card = card_row(code)
    assert "Rate" in card.message or "Оцените" in card.message

    # The web card shows the button too, until the visit is rated.
    web = shop.client.get(f"/c/{card.public_token}?lang=en")
    assert f'href="{path}"' in web.text

    page = shop.client.get(path + "?lang=en")
    assert page.status_code == 200
    assert 'name="score"' in page.text and "Rate your visit" in page.text

    r = _post(shop, path, 2, ["wait", "service"], "Cold coffee " + SCRIPT)
    assert r.status_code == 303, r.text
    [answer] = _answers(shop)
    assert (answer.score, answer.problems, answer.purchase_id) == (2, ["wait", "service"], purchase_id)
    assert answer.location_id == shop.location_id

    worker.drain()
    [alert] = [m for m in tg.sent if str(m.get("chat_id")) == "5550001"]
    assert "2/5" in alert["text"] and f"#{purchase_id}" in alert["text"] and "Main" in alert["text"]
    assert "<script>" not in alert["text"] and "&lt;script&gt;" in alert["text"]

    thanks = shop.client.get(path + "?saved=1&lang=en")
    assert "data-thanks" in thanks.text
    assert "<script>alert" not in thanks.text and "&lt;script&gt;" in thanks.text
    assert "onerror=alert(1)>" not in thanks.text
    assert thanks.headers["Referrer-Policy"] == "no-referrer"
    assert "script-src 'self'" in thanks.headers["Content-Security-Policy"]

    # The button is gone from the web card once answered.
    assert f'href="{path}"' not in shop.client.get(f"/c/{card.public_token}").text


def test_a_second_answer_edits_the_first_for_24_hours_then_the_link_is_closed(
    shop: Shop, tg: FakeTelegram
) -> None:
    program = shop.program("bonus")
    enable(shop)
    telegram(shop)
    code = shop.card(program)["code"]
    path, _purchase_id = buy_and_invite(shop, code)
    assert _post(shop, path, 4).status_code == 303
    assert _post(shop, path, 3, ["price"], "on second thought").status_code == 303
    [answer] = _answers(shop)
    assert (answer.score, answer.edits, answer.comment) == (3, 1, "on second thought")
    worker.drain()
    assert len(tg.sent) == 1  # the change to a 3 alerted, once
    assert _post(shop, path, 2).status_code == 303
    worker.drain()
    assert len(tg.sent) == 1  # already low: no second alert

    with db.transaction() as session:
        session.execute(
            update(Feedback)
            .where(Feedback.id == answer.id)
            .values(created_at=db.utcnow() - dt.timedelta(hours=25))
        )
    r = _post(shop, path, 5)
    assert r.status_code == 410 and 'data-code="feedback_closed"' in r.text
    [answer] = _answers(shop)
    assert answer.score == 2  # unchanged
    closed = shop.client.get(path + "?lang=en")
    assert "data-closed" in closed.text and 'name="score"' not in closed.text


def test_forged_foreign_and_old_links_are_refused_and_write_nothing(shop: Shop) -> None:
    program = shop.program("bonus")
    enable(shop)
    mine = shop.card(program)["code"]
    other = shop.card(program)["code"]
    path, purchase_id = buy_and_invite(shop, mine)
    _other_path, other_purchase = buy_and_invite(shop, other)
    token = card_row(mine).public_token

    forged = [
        f"/c/{'x' * 22}/rate/{purchase_id}",  # a made-up token
        f"/c/{token}/rate/{other_purchase}",  # my token, another guest's purchase
        f"/c/{token}/rate/999999999",  # no such purchase
        f"/c/{token}/rate/0",
    ]
    for url in forged:
        assert shop.client.get(url).status_code == 404, url
        assert _post(shop, url, 5).status_code == 404, url
    # Another merchant's card token with this purchase.
    stranger = new_shop(shop.client, "Other café")
    enable(stranger)
    their_code = stranger.card(stranger.program("bonus"))["code"]
    assert _post(shop, f"/c/{card_row(their_code).public_token}/rate/{purchase_id}", 5).status_code == 404

    # Bad answers: 422, the form again, nothing written.
    for score, problems in ((0, None), (6, None), ("five", None), (4, ["bogus"])):
        r = _post(shop, path, score, problems)
        assert r.status_code == 422, (score, problems)
        assert "data-problem" in r.text
    assert _answers(shop) == []

    # A purchase older than the answer window cannot be rated.
    from loyalwallet.checkout.models import Purchase

    with db.transaction() as session:
        session.execute(
            update(Purchase)
            .where(Purchase.id == purchase_id)
            .values(created_at=db.utcnow() - dt.timedelta(days=8))
        )
    assert _post(shop, path, 5).status_code == 410
    # Switched off: the links stop working.
    enable(shop, enabled=False)
    assert shop.client.get(f"/c/{card_row(other).public_token}/rate/{other_purchase}").status_code == 404
    assert _answers(shop) == []


def test_a_five_offers_the_locations_review_links(shop: Shop) -> None:
    program = shop.program("stamp")
    links = {
        str(shop.location_id): {"yandex": "https://yandex.ru/maps/org/1", "twogis": "https://2gis.ru/firm/2"}
    }
    enable(shop, review_links=links)
    code = shop.card(program)["code"]
    path, _ = buy_and_invite(shop, code)
    assert _post(shop, path, 5, ["wait"], "Lovely").status_code == 303
    page = shop.client.get(path + "?saved=1&lang=en")
    assert 'href="https://yandex.ru/maps/org/1"' in page.text and 'href="https://2gis.ru/firm/2"' in page.text
    assert 'data-site="google"' not in page.text
    [answer] = _answers(shop)
    assert answer.problems == []  # nothing was wrong with a 5

    # A 4 gets no review links.
    path2, _ = buy_and_invite(shop, code)
    _post(shop, path2, 4)
    assert "data-reviews" not in shop.client.get(path2 + "?saved=1").text

    # Review links must be https, for this merchant's locations.
    bad = shop.call(
        "PUT", "/api/v1/feedback/settings", json={"review_links": {"1": {"google": "javascript:x"}}}
    )
    assert bad.status_code == 422 and bad.json()["code"] == "validation_error"
    bad = shop.call(
        "PUT", "/api/v1/feedback/settings", json={"review_links": {"999999": {"google": "https://g.co/x"}}}
    )
    assert bad.status_code == 422
    assert (
        shop.call("PUT", "/api/v1/feedback/settings", json={"enabled": True}, role="manager").status_code
        == 403
    )


def test_points_for_answering_are_the_same_whatever_the_score_and_given_once(shop: Shop) -> None:
    program = shop.program("bonus")
    enable(shop, reward_points=30)
    code = shop.card(program)["code"]

    def balance() -> int:
        return int(shop.get(f"/api/v1/cards/{code}").json()["balance"])

    path1, _ = buy_and_invite(shop, code, 10_000)
    before = balance()
    _post(shop, path1, 1)
    assert balance() == before + 30
    _post(shop, path1, 5)  # an edit earns nothing
    assert balance() == before + 30
    path2, _ = buy_and_invite(shop, code, 10_000)
    before = balance()
    _post(shop, path2, 5)
    assert balance() == before + 30


def test_answers_about_one_card_are_rate_limited(shop: Shop) -> None:
    program = shop.program("bonus")
    enable(shop)
    code = shop.card(program)["code"]
    path, _ = buy_and_invite(shop, code)
    statuses = [_post(shop, path, 1 + i % 5).status_code for i in range(11)]
    assert statuses[:10] == [303] * 10 and statuses[10] == 429
    [answer] = _answers(shop)
    assert answer.edits == 9


def test_no_invitation_when_switched_off_or_for_an_anonymous_card(shop: Shop) -> None:
    program = shop.program("bonus")
    code = shop.card(program)["code"]
    shop.buy(code, 10_000)
    worker.drain()
    assert not card_row(code).message
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(Card).where(Card.code == code)) == 1
