"""A campaign reaches Google Wallet: `google.message` rows for the guests whose card is
in Google Wallet, delivered by the Google part's client to the local fake Google."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import update

from fakes.google_wallet import FakeGoogleWallet
from loyalwallet import db
from loyalwallet.outbox import worker
from loyalwallet.outbox.models import OutboxMessage
from loyalwallet.wallet.google import client, service
from support import Shop
from wallet.google.helpers import new_key


@pytest.fixture
def google(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGoogleWallet]:
    fake = FakeGoogleWallet().start()
    monkeypatch.setenv("LOYALWALLET_GOOGLE_API_URL", fake.api_url)
    monkeypatch.setenv("LOYALWALLET_GOOGLE_TOKEN_URL", fake.token_url)
    client.clear_tokens()
    service.reset_cache()
    key_file, public = new_key()
    fake.register(json.loads(key_file)["client_email"], public)
    with db.transaction() as session:
        service.import_key(session, key_file, fake.issuer_id, shop.merchant_id)
    yield fake
    with db.transaction() as session:
        service.remove_issuer(session, shop.merchant_id)
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.merchant_id == shop.merchant_id, OutboxMessage.status == "pending")
            .values(status="done")
        )
    fake.stop()
    client.clear_tokens()
    service.reset_cache()


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
