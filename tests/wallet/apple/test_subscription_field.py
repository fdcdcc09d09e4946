"""A running subscription on the card's Apple pass: what is left and until when (a front
field and a back field), and a use changes the pass the device fetches next."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fakes.wallet_device import open_pkpass
from loyalwallet.outbox import worker
from loyalwallet.wallet.apple import passes
from loyalwallet.wallet.apple.models import AppleCertificate
from support import Shop


def _fields(pj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    store = pj["storeCard"]
    return {f["key"]: f for name in passes._FIELD_LISTS for f in store.get(name, [])}


def test_the_pass_shows_units_left_and_the_end(
    shop: Shop, apple_cert: AppleCertificate, dev_root: str
) -> None:
    card = shop.card(shop.program("bonus"))
    plan = shop.post(
        "/api/v1/subscription-plans", {"name": "Кофе на месяц", "units": 20, "period_days": 30, "price": 1},
        role="manager",
    ).json()  # fmt: skip
    sub = shop.post(
        "/api/v1/subscriptions", {"plan_id": plan["id"], "card": card["code"]}, role="cashier"
    ).json()
    shop.post(f"/api/v1/subscriptions/{sub['id']}/uses", {}, role="cashier")
    worker.drain()
    r = shop.client.get(card["apple_pass_url"])
    assert r.status_code == 200, r.text
    pj = open_pkpass(r.content, dev_root).pass_json
    assert passes.problems(pj) == []
    fields = _fields(pj)
    key = f"subscription_{sub['id']}"
    ends = dt.datetime.fromisoformat(sub["ends_at"])
    assert fields[key]["label"] == "Кофе на месяц"
    assert fields[key]["value"].startswith("Осталось: 19 · до ") and f"{ends:%Y}" in fields[key]["value"]
    assert fields[f"back_{key}"]["value"] == fields[key]["value"]
