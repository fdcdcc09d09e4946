"""Consents reach iiko's customer: personal data and marketing at joining, marketing
withdrawn by the one-click unsubscribe, everything revoked by erasure. Each request is
checked against iiko's published description by the fake."""

from __future__ import annotations

from typing import Any

from integrations.iiko.conftest import IikoShop
from loyalwallet import db
from loyalwallet.customers.service import find_by_phone
from loyalwallet.messaging import unsubscribe
from loyalwallet.outbox import worker
from support import random_phone


def _join(ishop: IikoShop, phone: str, **extra: Any) -> Any:
    r = ishop.shop.post("/api/v1/cards", {"program_id": ishop.program_id, "phone": phone, **extra})
    assert r.status_code == 201, r.text
    worker.drain()
    guest = ishop.fake.by_phone(phone)
    assert guest is not None
    return guest


def test_a_join_without_marketing_consent_tells_iiko_no_promo_messages(ishop: IikoShop) -> None:
    """The bug: nothing was said, and iiko takes a new customer as wanting promo messages."""
    guest = _join(ishop, random_phone())
    assert guest.consent == 1 and guest.promo is False


def test_marketing_consent_given_at_joining_then_withdrawn_by_unsubscribing(
    app: Any, ishop: IikoShop
) -> None:
    phone = random_phone()
    guest = _join(ishop, phone, marketing_consent=True)
    assert guest.consent == 1 and guest.promo is True
    with db.read() as session:
        customer = find_by_phone(session, ishop.merchant_id, phone)
        assert customer is not None
        token = unsubscribe.token(ishop.merchant_id, customer.id)
    r = ishop.shop.client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200
    worker.drain()
    assert guest.promo is False and guest.consent == 1
    calls = [c.body for c in ishop.fake.calls if c.path.endswith("/customer/create_or_update")]
    assert calls[-1] == {
        "id": guest.id,
        "shouldReceivePromoActionsInfo": False,
        "organizationId": ishop.fake.org_id,
    }  # by iiko id only: no phone or name sent again


def test_erasing_the_guest_revokes_the_consent_in_iiko(ishop: IikoShop) -> None:
    phone = random_phone()
    guest = _join(ishop, phone, marketing_consent=True)
    r = ishop.shop.post("/api/v1/customers/erase", {"phone": phone, "reason": "asked by the guest"})
    assert r.status_code == 200, r.text
    worker.drain()
    assert guest.consent == 2 and guest.promo is False
