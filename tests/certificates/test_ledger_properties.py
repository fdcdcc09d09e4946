"""Hypothesis over the certificate ledger, driven through the services on the real
database: whatever mix of spends and refunds (in purchases and without a card), the
balance equals the sum of the entries, is never negative, and refunds never give back
more than was spent."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from loyalwallet import db
from loyalwallet.certificates import ledger, rules
from loyalwallet.certificates.models import CertificateEntry, GiftCertificate
from loyalwallet.certificates.schemas import CertificateIn, RedemptionIn, RedemptionRefundIn
from loyalwallet.certificates.service import redeem, refund_redemption, sell
from loyalwallet.checkout.schemas import PurchaseIn, RefundIn
from loyalwallet.checkout.service import purchase, refund
from loyalwallet.errors import DomainError
from loyalwallet.merchants.actors import Actor
from support import Shop

Op = tuple[str, int, int]
ops = st.lists(
    st.tuples(
        st.sampled_from(["spend", "buy", "refund", "refund_buy"]), st.integers(1, 6_000), st.integers(0, 50)
    ),
    min_size=1,
    max_size=14,
)


def _try(fn: Any, *args: Any) -> Any:
    try:
        with db.transaction() as session:
            return fn(session, *args)
    except DomainError as exc:
        assert exc.code in ("certificate_insufficient", "refund_exceeds_purchase", "validation_error"), exc
        return None


@given(amount=st.integers(1, 20_000), steps=ops)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_balance_is_the_sum_never_negative_refunds_bounded(shop: Shop, amount: int, steps: list[Op]) -> None:
    actor = Actor(merchant_id=shop.merchant_id, role="cashier", kind="system")
    if not hasattr(shop, "_card"):
        shop._card = shop.card(shop.program("bonus"))["code"]  # type: ignore[attr-defined]
    card = shop._card  # type: ignore[attr-defined]
    with db.transaction() as session:
        code = sell(session, actor, CertificateIn(amount=amount))[1]["code"]
    spends: list[int] = []
    purchases: list[int] = []
    for kind, value, pick in steps:
        if kind == "spend":
            out = _try(lambda s, v=value: redeem(s, actor, code, RedemptionIn(amount=v)))
            if out:
                spends.append(out[1]["id"])
        elif kind == "buy":
            body = PurchaseIn(card=card, amount=value + pick * 10, certificate=code)
            out = _try(lambda s, b=body: purchase(s, actor, b))
            if out:
                purchases.append(out[1]["id"])
        elif kind == "refund" and spends:
            spend_id = spends[pick % len(spends)]
            _try(
                lambda s, i=spend_id, v=value: refund_redemption(
                    s, actor, code, i, RedemptionRefundIn(amount=v)
                )
            )
        elif kind == "refund_buy" and purchases:
            pid = purchases[pick % len(purchases)]
            _try(lambda s, p=pid, v=value: refund(s, actor, p, RefundIn(amount=v)))
    with db.read() as session:
        cert = ledger.find(session, shop.merchant_id, code, lock=False)
        total = session.scalar(
            select(func.sum(CertificateEntry.amount)).where(CertificateEntry.certificate_id == cert.id)
        )
        assert cert.balance == total and 0 <= cert.balance <= amount
        spent = -int(
            session.scalar(
                select(func.coalesce(func.sum(CertificateEntry.amount), 0)).where(
                    CertificateEntry.certificate_id == cert.id, CertificateEntry.kind == "spend"
                )
            )
        )
        returned = int(
            session.scalar(
                select(func.coalesce(func.sum(CertificateEntry.amount), 0)).where(
                    CertificateEntry.certificate_id == cert.id, CertificateEntry.kind == "refund"
                )
            )
        )
        assert 0 <= returned <= spent
        assert [p for p in ledger.check_ledger(session) if p["certificate_id"] == cert.id] == []
        assert session.get(GiftCertificate, cert.id) is not None


@given(
    paid=st.integers(0, 10**7),
    extra=st.integers(0, 10**7),
    cuts=st.lists(st.integers(1, 10**7), max_size=8),
)
def test_refund_shares_add_up_to_what_was_paid(paid: int, extra: int, cuts: list[int]) -> None:
    """Cumulative shares: each ≤ the money of that refund, the total ≤ paid, a full refund
    gives back exactly what the certificate paid."""
    to_pay = paid + extra
    money = 0
    given_back = 0
    for cut in [*cuts, to_pay]:
        step = min(cut, to_pay - money)
        money += step
        share = rules.refund_share(paid, to_pay, money, given_back)
        assert 0 <= share <= step
        given_back += share
        assert given_back <= paid
    assert given_back == (paid if to_pay else 0)
