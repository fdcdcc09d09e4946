"""Whatever FarCards (or anyone knowing the address) sends: an answer in FarCards' format,
never a 500, and a refused check writes nothing."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from integrations.rkeeper.conftest import RkShop
from loyalwallet import db
from loyalwallet.checkout.models import Purchase

FIELDS = ("Card", "Kind", "Summa", "Restaurant", "RKDate", "RKUnit", "RKCheck")
values = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["0", "1", "3", "-1", "", " ", "1e3", "0x10", "２", "NaN"]),
)


def _purchases(merchant_id: int) -> int:
    with db.read() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(Purchase).where(Purchase.merchant_id == merchant_id)
            )
            or 0
        )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(attrs=st.dictionaries(st.sampled_from(FIELDS), values, max_size=len(FIELDS)))
def test_any_transaction_attributes_get_a_farcards_answer(rk: RkShop, attrs: dict[str, str]) -> None:
    clean = {k: "".join(ch for ch in v if ch.isprintable()) for k, v in attrs.items()}
    item = " ".join(f"{k}={quoteattr(v)}" for k, v in clean.items())
    body = f"<ROOT><Transactions><TransactionsEx {item}/></Transactions></ROOT>".encode()
    before = _purchases(rk.merchant_id)
    answer = rk.till.post("TransactionsEx", body)
    assert answer.status < 500 and answer.result in (0, 1)
    if answer.result == 1:
        assert _purchases(rk.merchant_id) == before
    assert rk.till.invalid == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_any_body_gets_a_farcards_answer(rk: RkShop, body: bytes) -> None:
    for function in ("GetCardInfoEx", "TransactionsEx"):
        answer = rk.till.post(function, body)
        assert answer.status < 500 and answer.result == 1
    assert rk.till.invalid == []
