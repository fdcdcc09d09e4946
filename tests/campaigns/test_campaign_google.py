"""A campaign reaches Google Wallet: `google.message` rows for the guests whose card is
in Google Wallet, delivered by the Google part's client to the local fake Google."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import select, update

from fakes.google_wallet import FakeGoogleWallet
from loyalwallet import db
from loyalwallet.outbox import worker
from loyalwallet.outbox.models import OutboxMessage
from loyalwallet.wallet.google import client
from loyalwallet.wallet.google.issuer import import_key, remove_issuer, reset_cache
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
