"""The lot rules of the ledger, and a model-based test: a random sequence of
operations keeps balance == sum of entries and open lots == the positive balance."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from loyalwallet.cards import lots as L
from loyalwallet.cards.codes import luhn_ok, new_code

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_fifo_soonest_expiry_first_never_expiring_last() -> None:
    lots = [
        L.Lot(1, 10, None),
        L.Lot(2, 10, NOW + dt.timedelta(days=30)),
        L.Lot(3, 10, NOW + dt.timedelta(days=10)),
    ]
    assert L.take_spendable(lots, 15, NOW) == [(3, 10), (2, 5)]


def test_pending_lots_are_not_spendable() -> None:
    lots = [L.Lot(1, 10, None, NOW + dt.timedelta(hours=1)), L.Lot(2, 5, None)]
    assert L.available(lots, NOW) == 5
    assert L.pending(lots, NOW) == 10


def test_expired_lots() -> None:
    lots = [
        L.Lot(1, 10, NOW),
        L.Lot(2, 5, NOW + dt.timedelta(seconds=1)),
        L.Lot(3, 0, NOW - dt.timedelta(days=1)),
    ]
    assert [lot.id for lot in L.expired(lots, NOW)] == [1]


def test_reversal_prefers_the_purchase_lot_and_reports_debt() -> None:
    lots = [L.Lot(1, 10, None), L.Lot(2, 4, None)]
    allocations, uncovered = L.take_for_reversal(lots, 20, NOW, prefer=2)
    assert allocations == [(2, 4), (1, 10)]
    assert uncovered == 6


def test_new_lot_repays_debt_first() -> None:
    assert L.new_lot_remaining(10, -4) == 6
    assert L.new_lot_remaining(3, -4) == 0
    assert L.new_lot_remaining(3, 7) == 3


def test_card_codes_have_a_check_digit() -> None:
    for _ in range(100):
        code = new_code()
        assert len(code) == 13 and luhn_ok(code)
        wrong = code[:-1] + str((int(code[-1]) + 1) % 10)
        assert not luhn_ok(wrong)


ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("credit"),
            st.integers(1, 500),
            st.sampled_from([None, 1, 5, 30]),
            st.sampled_from([0, 0, 2]),
        ),
        st.tuples(st.just("redeem"), st.integers(1, 500)),
        st.tuples(st.just("reverse"), st.integers(1, 500), st.booleans()),
        st.tuples(st.just("wait"), st.integers(1, 24 * 10)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops=ops)
def test_ledger_model_keeps_its_invariants(ops: list[tuple]) -> None:
    now = NOW
    lots: dict[int, L.Lot] = {}
    entries: list[int] = []
    balance = 0
    next_id = 1

    def apply(allocs: list[tuple[int, int]]) -> None:
        for lot_id, take in allocs:
            lot = lots[lot_id]
            assert 0 < take <= lot.remaining
            lots[lot_id] = L.Lot(lot.id, lot.remaining - take, lot.expires_at, lot.available_at)

    for op in ops:
        # Expiry first, as every write does.
        gone = L.expired(list(lots.values()), now)
        if gone:
            total = sum(lot.remaining for lot in gone)
            apply([(lot.id, lot.remaining) for lot in gone])
            entries.append(-total)
            balance -= total
        if op[0] == "credit":
            _, pts, ttl, pending = op
            remaining = L.new_lot_remaining(pts, balance)
            lots[next_id] = L.Lot(
                next_id,
                remaining,
                now + dt.timedelta(days=ttl) if ttl else None,
                now + dt.timedelta(hours=pending) if pending else None,
            )
            next_id += 1
            entries.append(pts)
            balance += pts
        elif op[0] == "redeem":
            pts = op[1]
            if pts <= L.available(list(lots.values()), now):
                apply(L.take_spendable(list(lots.values()), pts, now))
                entries.append(-pts)
                balance -= pts
        elif op[0] == "reverse":
            _, pts, allow_debt = op
            allocs, uncovered = L.take_for_reversal(list(lots.values()), pts, now)
            taken = pts if allow_debt else pts - uncovered
            if taken:
                apply(allocs)
                entries.append(-taken)
                balance -= taken
            if not allow_debt:
                assert balance >= 0 or taken == 0
        else:
            now += dt.timedelta(hours=op[1])
        open_total = sum(lot.remaining for lot in lots.values())
        assert balance == sum(entries)
        assert open_total == max(balance, 0)
        assert L.available(list(lots.values()), now) <= max(balance, 0)
