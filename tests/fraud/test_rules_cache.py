"""A change of the anti-fraud rules takes effect at once in the process that made it,
even when a purchase read (and would cache) the old rules while the change committed."""

from __future__ import annotations

from loyalwallet import db
from loyalwallet.fraud import service as fraud
from loyalwallet.merchants.actors import system
from support import Shop


def _block_hourly(shop: Shop, count: int) -> None:
    rule = {"max_purchases_per_hour": {"action": "block", "count": count}}
    r = shop.call("PUT", "/api/v1/fraud/rules", json=rule)
    assert r.status_code == 200, r.text


def test_a_rules_change_applies_to_the_next_purchase(shop: Shop) -> None:
    card = shop.card(shop.program("bonus"))
    _block_hourly(shop, 100)
    for _ in range(3):
        shop.buy(card["code"], 10_000)  # the rules are now cached in this process
    _block_hourly(shop, 2)
    assert shop.buy(card["code"], 10_000, expect=429)["code"] == "fraud_limit"


def test_a_read_racing_the_change_is_not_kept(shop: Shop) -> None:
    with db.transaction() as session:
        fraud.set_rules(session, system(shop.merchant_id), {"refund_manager_only": {"action": "block"}})
        # A purchase in another transaction reads the rules before the change commits...
        with db.read() as other:
            rules, _tz = fraud._cache.get(other, shop.merchant_id)
        assert rules.refund_manager_only.action == "off"
    # ...and once it has committed, the next read sees the new rules, not that cached copy.
    with db.read() as session:
        rules, _tz = fraud._cache.get(session, shop.merchant_id)
    assert rules.refund_manager_only.action == "block"
