"""A campaign reaches Google Wallet: `google.message` rows for the guests whose card is
in Google Wallet, delivered by the Google part's client to the local fake Google."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator

import pytest
from sqlalchemy import delete, select, update

from fakes.google_wallet import FakeGoogleWallet
from loyalwallet import db
from loyalwallet.campaigns import service as campaigns_service
from loyalwallet.outbox import worker
from loyalwallet.outbox.models import OutboxMessage
from loyalwallet.wallet.google import client
from loyalwallet.wallet.google.issuer import import_key, remove_issuer, reset_cache
from loyalwallet.wallet.google.models import GoogleMessageSend, GoogleObject
from support import Shop
from wallet.google.helpers import new_key


@pytest.fixture
def google(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGoogleWallet]:
    fake = FakeGoogleWallet().start()
    monkeypatch.setenv("LOYALWALLET_GOOGLE_API_URL", fake.api_url)
    monkeypatch.setenv("LOYALWALLET_GOOGLE_TOKEN_URL", fake.token_url)
    client.clear_tokens()
    reset_cache()
    key_file, public = new_key()
    fake.register(json.loads(key_file)["client_email"], public)
    with db.transaction() as session:
        import_key(session, key_file, fake.issuer_id, shop.merchant_id)
    yield fake
    with db.transaction() as session:
        remove_issuer(session, shop.merchant_id)
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.merchant_id == shop.merchant_id, OutboxMessage.status == "pending")
            .values(status="done")
        )
    fake.stop()
    client.clear_tokens()
    reset_cache()


def test_a_campaign_message_arrives_in_google_wallet(shop: Shop, google: FakeGoogleWallet) -> None:
    bonus = shop.program("bonus")
    cards = [shop.card(bonus, marketing_consent=True) for _ in range(3)]
    worker.drain()  # the cards' Google objects are inserted
    assert len(google.objects) == 3
    r = shop.post(
        "/api/v1/campaigns",
        {"name": "Autumn", "header": "Pumpkin latte", "body": "Is back, with 2x points", "send_now": True},
        role="manager",
    )
    assert r.status_code == 201, r.text
    worker.drain()
    for obj in google.objects.values():
        [message] = obj["messages"]
        assert (message["header"], message["body"]) == ("Pumpkin latte", "Is back, with 2x points")
        assert message["id"].startswith(f"campaign-{r.json()['id']}-")
    stats = shop.get(f"/api/v1/campaigns/{r.json()['id']}", role="manager").json()["stats"]
    assert stats["sent"] == 3 and stats["google_delivered"] == 3 and stats["google_failed"] == 0
    assert len(cards) == 3


def _google_patch_rows(shop: Shop) -> list[OutboxMessage]:
    with db.read() as session:
        return list(
            session.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.merchant_id == shop.merchant_id, OutboxMessage.topic == "google.patch"
                )
            )
        )


def test_a_message_only_campaign_does_not_patch_google_objects(shop: Shop, google: FakeGoogleWallet) -> None:
    """The Google object does not show Card.message: a campaign that changes nothing
    else sends addMessage only; one with points also patches the objects (balance)."""
    bonus = shop.program("bonus")
    codes = [shop.card(bonus, marketing_consent=True)["code"] for _ in range(3)]
    worker.drain()
    patch_rows = len(_google_patch_rows(shop))
    google.calls.clear()

    r = shop.post(
        "/api/v1/campaigns",
        {"name": "News", "header": "New hours", "body": "Open till 10 pm", "send_now": True},
        role="manager",
    )
    assert r.status_code == 201, r.text
    worker.drain()
    assert len(google.calls_to("POST", "/addMessage")) == 3
    inserts = [c for c in google.calls_to("POST", "/loyalty") if not c.path.endswith("/addMessage")]
    assert google.calls_to("PATCH") == [] and inserts == []
    assert len(_google_patch_rows(shop)) == patch_rows  # not even queued

    google.calls.clear()
    r = shop.post(
        "/api/v1/campaigns",
        {"name": "Gift", "header": "A gift", "body": "50 points for you", "points": 50, "send_now": True},
        role="manager",
    )
    assert r.status_code == 201, r.text
    worker.drain()
    assert len(_google_patch_rows(shop)) == patch_rows + 3
    patched = google.calls_to("PATCH", "loyaltyObject")
    assert len(patched) == 3
    for obj in google.objects.values():
        assert obj["loyaltyPoints"]["balance"] == {"int": 50}
        assert [m["header"] for m in obj["messages"]] == ["New hours", "A gift"]
    assert len(codes) == 3


# --- batched google.message rows (issue 14: fan-out near the raw client) -------------------


def _message_rows(shop: Shop) -> list[OutboxMessage]:
    with db.read() as session:
        return list(
            session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.merchant_id == shop.merchant_id, OutboxMessage.topic == "google.message")
                .order_by(OutboxMessage.id)
            )
        )


def _campaign(shop: Shop, header: str = "Pumpkin latte") -> int:
    r = shop.post(
        "/api/v1/campaigns",
        {"name": "Autumn", "header": header, "body": "Is back", "send_now": True},
        role="manager",
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _stats(shop: Shop, campaign_id: int) -> dict[str, int]:
    return shop.get(f"/api/v1/campaigns/{campaign_id}", role="manager").json()["stats"]


def _added(google: FakeGoogleWallet) -> dict[str, int]:
    """Successful addMessage calls per object."""
    out: dict[str, int] = {}
    for call in google.calls_to("POST", "/addMessage"):
        oid = call.path.split("/")[-2]
        out[oid] = out.get(oid, 0) + 1
    return out


def test_a_campaign_makes_one_google_row_per_chunk(
    shop: Shop, google: FakeGoogleWallet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(campaigns_service, "MESSAGE_CHUNK", 3)  # a message-only campaign
    bonus = shop.program("bonus")
    for _ in range(7):
        shop.card(bonus, marketing_consent=True)
    worker.drain()
    google.calls.clear()
    campaign_id = _campaign(shop)
    worker.drain()
    rows = _message_rows(shop)
    assert len(rows) == math.ceil(7 / 3) == 3
    assert sorted(len(r.payload["cards"]) for r in rows) == [1, 3, 3]
    assert all(r.status == "done" and r.attempts == 1 for r in rows)
    assert sorted(_added(google).values()) == [1] * 7
    assert len(google.calls_to("POST", "/batch")) == 3  # one batch request per chunk
    assert _stats(shop, campaign_id)["google_delivered"] == 7


def test_a_retried_chunk_does_not_send_twice(
    shop: Shop, google: FakeGoogleWallet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker ran the chunk but its outcome was lost (its lease ran out, or it died
    before recording it): the row runs again and messages nobody a second time."""
    bonus = shop.program("bonus")
    for _ in range(4):
        shop.card(bonus, marketing_consent=True)
    worker.drain()
    google.calls.clear()
    campaign_id = _campaign(shop)
    worker.drain()
    (row,) = _message_rows(shop)
    with db.transaction() as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row.id)
            .values(status="pending", next_attempt_at=db.utcnow())
        )
    worker.drain()
    assert [r.status for r in _message_rows(shop)] == ["done"]
    assert sorted(_added(google).values()) == [1, 1, 1, 1]
    assert _stats(shop, campaign_id)["google_delivered"] == 4
    # Even with its per-card record gone, the message id on the object stops a resend.
    with db.transaction() as session:
        session.execute(delete(GoogleMessageSend))
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row.id)
            .values(status="pending", next_attempt_at=db.utcnow())
        )
    worker.drain()
    assert sorted(_added(google).values()) == [1, 1, 1, 1]
    for obj in google.objects.values():
        assert [m["header"] for m in obj["messages"]] == ["Pumpkin latte"]


def test_a_card_google_refuses_does_not_block_the_rest(shop: Shop, google: FakeGoogleWallet) -> None:
    bonus = shop.program("bonus")
    for _ in range(5):
        shop.card(bonus, marketing_consent=True)
    worker.drain()
    google.calls.clear()
    refused = sorted(google.objects)[2]
    google.fail(400, times=100, method="POST", path=f"{refused}/addMessage")
    campaign_id = _campaign(shop)
    worker.drain()
    assert [r.status for r in _message_rows(shop)] == ["done"]  # the chunk is not held up
    added = _added(google)
    assert refused not in added and sorted(added.values()) == [1, 1, 1, 1]
    stats = _stats(shop, campaign_id)
    assert (stats["google_delivered"], stats["google_failed"], stats["google_pending"]) == (4, 1, 0)
    assert stats["sent"] == 5
    with db.read() as session:
        (failed,) = session.scalars(select(GoogleMessageSend).where(GoogleMessageSend.status == "failed"))
    assert "400" in (failed.error or "")


def test_cards_that_failed_for_a_while_are_tried_again_alone(shop: Shop, google: FakeGoogleWallet) -> None:
    """A 503 for two cards: the three others are delivered, the two go in a row of their
    own, which delivers them once Google answers again (and nobody gets two)."""
    bonus = shop.program("bonus")
    for _ in range(5):
        shop.card(bonus, marketing_consent=True)
    worker.drain()
    google.calls.clear()
    flaky = sorted(google.objects)[1:3]
    for oid in flaky:
        google.fail(503, times=1, method="POST", path=f"{oid}/addMessage")
    campaign_id = _campaign(shop)
    worker.drain()
    first, again = _message_rows(shop)
    assert first.status == "done" and again.status == "pending"
    assert len(again.payload["cards"]) == 2
    assert _stats(shop, campaign_id)["google_pending"] == 2
    with db.transaction() as session:  # its delay has passed
        session.execute(
            update(OutboxMessage).where(OutboxMessage.id == again.id).values(next_attempt_at=db.utcnow())
        )
    worker.drain()
    assert [r.status for r in _message_rows(shop)] == ["done", "done"]
    assert sorted(_added(google).values()) == [1] * 5
    stats = _stats(shop, campaign_id)
    assert (stats["google_delivered"], stats["google_failed"], stats["google_pending"]) == (5, 0, 0)


def test_an_outage_retries_the_whole_chunk(shop: Shop, google: FakeGoogleWallet) -> None:
    bonus = shop.program("bonus")
    for _ in range(3):
        shop.card(bonus, marketing_consent=True)
    worker.drain()
    google.calls.clear()
    google.fail(503, times=3, method="POST", path="/addMessage")
    _campaign(shop)
    worker.drain()
    (row,) = _message_rows(shop)
    assert row.status == "pending" and row.attempts == 1 and "503" in (row.last_error or "")
    with db.transaction() as session:
        session.execute(
            update(OutboxMessage).where(OutboxMessage.id == row.id).values(next_attempt_at=db.utcnow())
        )
    worker.drain()
    assert [r.status for r in _message_rows(shop)] == ["done"]
    assert sorted(_added(google).values()) == [1, 1, 1]


def test_a_failed_batch_request_retries_the_chunk(shop: Shop, google: FakeGoogleWallet) -> None:
    bonus = shop.program("bonus")
    for _ in range(3):
        shop.card(bonus, marketing_consent=True)
    worker.drain()
    google.calls.clear()
    google.fail(502, times=1, method="POST", path="/batch")
    campaign_id = _campaign(shop)
    worker.drain()
    (row,) = _message_rows(shop)
    assert row.status == "pending" and _stats(shop, campaign_id)["google_pending"] == 3
    with db.transaction() as session:
        session.execute(
            update(OutboxMessage).where(OutboxMessage.id == row.id).values(next_attempt_at=db.utcnow())
        )
    worker.drain()
    assert sorted(_added(google).values()) == [1, 1, 1]
    assert _stats(shop, campaign_id)["google_delivered"] == 3


def test_a_full_object_is_trimmed_in_the_batch(shop: Shop, google: FakeGoogleWallet) -> None:
    """Google keeps 10 messages: an object holding 10 of ours drops the oldest first."""
    bonus = shop.program("bonus")
    shop.card(bonus, marketing_consent=True)
    worker.drain()
    old = [{"id": f"old-{n}", "header": "Old", "body": "News", "messageType": "TEXT"} for n in range(10)]
    (oid,) = google.objects
    google.objects[oid]["messages"] = list(old)
    with db.transaction() as session:
        session.execute(
            update(GoogleObject).where(GoogleObject.merchant_id == shop.merchant_id).values(messages=old)
        )
    _campaign(shop, header="Fresh")
    worker.drain()
    ids = [m["id"] for m in google.objects[oid]["messages"]]
    assert len(ids) == 10 and ids[0] == "old-1" and ids[-1].startswith("campaign-")
    with db.read() as session:
        (stored,) = session.scalars(
            select(GoogleObject.messages).where(GoogleObject.merchant_id == shop.merchant_id)
        )
    assert [m["id"] for m in stored] == ids


def test_a_trigger_chunk_makes_one_google_row_with_each_guests_text(
    shop: Shop, google: FakeGoogleWallet
) -> None:
    """A scheduled trigger's chunk of guests queues ONE batched google.message row (was
    one per card); each guest's own text ({days}) reaches their object, and a rerun of
    the row messages nobody twice."""
    from loyalwallet.campaigns import triggers
    from loyalwallet.cards.models import Card
    from loyalwallet.merchants.models import Merchant

    offset = 12 - db.utcnow().hour  # a time zone where it is about noon: the 00:00 run is due
    zone = "Etc/GMT" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"
    with db.transaction() as session:
        session.execute(update(Merchant).where(Merchant.id == shop.merchant_id).values(timezone=zone))
    bonus = shop.program("bonus")
    cards = [shop.card(bonus, marketing_consent=True) for _ in range(3)]
    for c in cards:
        shop.buy(c["code"], 10_000)
    worker.drain()
    away = {c["code"]: 31 + n for n, c in enumerate(cards)}
    with db.transaction() as session:
        for code, days in away.items():
            session.execute(
                update(Card)
                .where(Card.code == code, Card.merchant_id == shop.merchant_id)
                .values(last_visit_at=db.utcnow() - dt.timedelta(days=days, hours=1))
            )
    r = shop.post(
        "/api/v1/triggers",
        {
            "kind": "lapsed",
            "params": {
                "days": 30,
                "send_at": "00:00",
                "message": {"header": "We miss you", "body": "{days} days away"},
            },
        },
        role="manager",
    )
    assert r.status_code == 201, r.text
    google.calls.clear()
    triggers.schedule_due()
    worker.drain()
    rows = _message_rows(shop)
    assert len(rows) == 1 and rows[0].status == "done"
    assert len(rows[0].payload["cards"]) == 3
    assert len(google.calls_to("POST", "/batch")) == 1
    with db.read() as session:
        objects = {
            code: session.scalar(
                select(GoogleObject.object_id)
                .join(Card, Card.id == GoogleObject.card_id)
                .where(Card.code == code, Card.merchant_id == shop.merchant_id)
            )
            for code in away
        }
    for code, days in away.items():
        [message] = google.objects[objects[code]]["messages"]
        assert (message["header"], message["body"]) == ("We miss you", f"{days} days away")
    # The row runs again (its outcome lost): nobody is messaged twice.
    with db.transaction() as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == rows[0].id)
            .values(status="pending", next_attempt_at=db.utcnow())
        )
    worker.drain()
    assert sorted(_added(google).values()) == [1, 1, 1]


def test_old_outcomes_of_finished_campaigns_are_deleted_in_batches(
    shop: Shop, google: FakeGoogleWallet
) -> None:
    """google_message_sends does not grow forever: rows older than the outbox retention
    go (in batches), except those of a campaign still open or finished recently."""
    from loyalwallet.campaigns.models import Campaign
    from loyalwallet.campaigns.retention import purge_google_sends

    bonus = shop.program("bonus")
    cards = [shop.card(bonus, marketing_consent=True) for _ in range(3)]
    worker.drain()
    old_id = _campaign(shop, "Old news")
    worker.drain()
    open_id = _campaign(shop, "Still going")
    worker.drain()

    def sends(campaign_id: int) -> int:
        with db.read() as session:
            return len(
                session.scalars(
                    select(GoogleMessageSend.message_id).where(
                        GoogleMessageSend.batch == f"campaign-{campaign_id}"
                    )
                ).all()
            )

    assert sends(old_id) == sends(open_id) == 3
    later = db.utcnow() + dt.timedelta(days=30)
    with db.transaction() as session:
        # The old campaign finished long ago; the other is still sending (its last chunk's
        # Google row may be waiting): its rows stay whatever their age.
        session.execute(
            update(Campaign).where(Campaign.id == old_id).values(finished_at=later - dt.timedelta(days=20))
        )
        session.execute(update(Campaign).where(Campaign.id == open_id).values(status="sending"))
        trigger_row = GoogleMessageSend(
            message_id="trigger-1-1-welcome",
            card_id=session.scalar(select(GoogleObject.card_id).limit(1)),
            merchant_id=shop.merchant_id,
            batch="trigger-1",
            status="sent",
            created_at=later - dt.timedelta(days=10),
        )
        session.add(trigger_row)
    assert purge_google_sends(now=db.utcnow(), days=7) == 0  # nothing is old yet
    # (Other tests' rows in the same database are as old by then: counted too.)
    assert purge_google_sends(now=later, days=7, batch=1) >= 4  # batches of one still finish
    assert sends(old_id) == 0 and sends(open_id) == 3
    with db.read() as session:
        assert session.get(GoogleMessageSend, "trigger-1-1-welcome") is None
    # Finished recently: kept until the retention has passed since it finished.
    with db.transaction() as session:
        session.execute(
            update(Campaign)
            .where(Campaign.id == open_id)
            .values(status="sent", finished_at=later - dt.timedelta(days=1))
        )
    purge_google_sends(now=later, days=7)
    assert sends(open_id) == 3
    assert purge_google_sends(now=later + dt.timedelta(days=7), days=0) == 0  # 0 keeps everything
    assert purge_google_sends(now=later + dt.timedelta(days=7), days=7) >= 3
    assert sends(open_id) == 0
    assert len(cards) == 3


@pytest.mark.parametrize("points", [0, 5])
def test_a_chunks_google_row_is_queued_at_its_chunks_place(
    shop: Shop, google: FakeGoogleWallet, monkeypatch: pytest.MonkeyPatch, points: int
) -> None:
    """The Google row of a chunk is due when the chunk's row was, not behind the Apple
    pushes the chunks before it queued (placed at their card.changed: bench/fanout.py saw
    a 10,000-card campaign's last Google messages wait for nearly all of its pushes)."""
    monkeypatch.setattr(campaigns_service, "MESSAGE_CHUNK", 3)
    monkeypatch.setattr(campaigns_service, "CHUNK", 3)
    bonus = shop.program("bonus")
    for _ in range(5):
        shop.card(bonus, marketing_consent=True)
    worker.drain()
    google.calls.clear()
    r = shop.post(
        "/api/v1/campaigns",
        {"name": "Autumn", "header": "Hi", "body": "Is back", "points": points, "send_now": True},
        role="manager",
    )
    assert r.status_code == 201, r.text
    worker.drain()
    with db.read() as session:
        rows = list(
            session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.merchant_id == shop.merchant_id)
                .order_by(OutboxMessage.id)
            )
        )
    delivers = {row.created_at for row in rows if row.topic == "campaign.deliver"}
    changed = [
        row.created_at
        for row in rows
        if row.topic == "card.changed"
        and row.id > min(row.id for row in rows if row.topic == "campaign.deliver")
    ]
    messages = [row for row in rows if row.topic == "google.message"]
    assert messages and changed
    for row in messages:
        assert row.next_attempt_at in delivers
        assert row.next_attempt_at <= min(changed)
    assert sorted(_added(google).values()) == [1] * 5
