"""Points expiring and iiko: iikoCloud publishes no expiry dates, and says so."""

from __future__ import annotations

from integrations.iiko.conftest import IikoShop


def test_a_points_expiring_trigger_on_an_iiko_programme_says_why_not(ishop: IikoShop) -> None:
    """iikoCloud publishes no expiry dates (customer/info, get_counters, the transaction
    report): the trigger is refused with the reason instead of silently never firing."""
    r = ishop.shop.post(
        "/api/v1/triggers",
        {
            "kind": "points_expiring",
            "program_id": ishop.program_id,
            "params": {"days_before": 7, "message": {"header": "Баллы сгорают", "body": "Скоро"}},
        },
    )
    assert r.status_code == 422 and "iiko does not tell when its points burn" in r.json()["detail"]
