"""One-click unsubscribe from marketing e-mail: a signed link per guest (RFC 8058
List-Unsubscribe / List-Unsubscribe-Post headers point at it) that withdraws the guest's
marketing consent, recorded like any other consent change."""

from __future__ import annotations

import hashlib
import hmac

from sqlalchemy.orm import Session

from loyalwallet.customers.models import Customer
from loyalwallet.customers.service import record_consent
from loyalwallet.enrollment.limits import derived_key
from loyalwallet.enrollment.links import base_url
from loyalwallet.errors import not_found


def _sig(merchant_id: int, customer_id: int) -> str:
    mac = hmac.new(derived_key("unsubscribe"), f"{merchant_id}:{customer_id}".encode(), hashlib.sha256)
    return mac.hexdigest()[:32]


def token(merchant_id: int, customer_id: int) -> str:
    return f"{merchant_id}.{customer_id}.{_sig(merchant_id, customer_id)}"


def url(merchant_id: int, customer_id: int) -> str:
    return f"{base_url().rstrip('/')}/u/{token(merchant_id, customer_id)}"


def customer_for(session: Session, raw: str) -> Customer:
    """The guest of a valid token; not_found for a forged or mangled one."""
    parts = raw.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit() or len(raw) > 80:
        raise not_found("link")
    merchant_id, customer_id = int(parts[0]), int(parts[1])
    if not hmac.compare_digest(parts[2], _sig(merchant_id, customer_id)):
        raise not_found("link")
    customer = session.get(Customer, customer_id)
    if customer is None or customer.merchant_id != merchant_id:
        raise not_found("link")
    return customer


def unsubscribe(session: Session, raw: str, how: str) -> Customer:
    """Withdraw marketing consent (once: a second click changes nothing)."""
    customer = customer_for(session, raw)
    if customer.marketing_consent:
        record_consent(session, customer, "marketing", False, "unsubscribe", "email", {"how": how})
    return customer
