"""Fixtures of the Google Wallet tests: the fake Google, a shop with its own issuer key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import update

from fakes.google_wallet import FakeGoogleWallet
from loyalwallet import db
from loyalwallet.outbox.models import OutboxMessage
from loyalwallet.wallet.google import client
from loyalwallet.wallet.google.issuer import import_key, remove_issuer, reset_cache
from support import Shop
from wallet.google.helpers import new_key


@pytest.fixture
def google(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGoogleWallet]:
    fake = FakeGoogleWallet().start()
    monkeypatch.setenv("LOYALWALLET_GOOGLE_API_URL", fake.api_url)
    monkeypatch.setenv("LOYALWALLET_GOOGLE_TOKEN_URL", fake.token_url)
    monkeypatch.setenv("LOYALWALLET_GOOGLE_TIMEOUT", "1")
    client.clear_tokens()
    reset_cache()
    yield fake
    fake.stop()
    client.clear_tokens()
    reset_cache()


@dataclass
class GoogleShop:
    shop: Shop
    fake: FakeGoogleWallet
    key_file: str
    public_key: Any

    @property
    def issuer_id(self) -> str:
        return self.fake.issuer_id


@pytest.fixture
def gshop(shop: Shop, google: FakeGoogleWallet) -> Iterator[GoogleShop]:
    """A shop with its own Google issuer whose key the fake Google knows."""
    key_file, public = new_key()
    google.register(json.loads(key_file)["client_email"], public)
    with db.transaction() as session:
        import_key(session, key_file, google.issuer_id, shop.merchant_id)
    yield GoogleShop(shop, google, key_file, public)
    with db.transaction() as session:
        remove_issuer(session, shop.merchant_id)
        # Nothing of this shop is left for other tests' workers to deliver.
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.merchant_id == shop.merchant_id, OutboxMessage.status == "pending")
            .values(status="done")
        )
