"""Two processes (here: threads with their own connections) confirming at the same time
never make two guests or two cards."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from enrollment_support import BONUS_RULES, sms_code
from loyalwallet import db
from loyalwallet.cards.models import Card
from loyalwallet.customers.models import Customer
from loyalwallet.enrollment.join import JoinRequest, start_join, verify
from support import random_phone


def _start(pid: int, phone: str) -> str:
    with db.transaction() as session:
        req = JoinRequest(
            program_id=pid, values={"phone": phone}, personal_data=True, marketing=False, lang="ru"
        )
        return start_join(session, req).token


def _race(*calls) -> list[object]:
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def run(i: int, fn) -> None:
        barrier.wait()
        try:
            results[i] = fn()
        except Exception as exc:  # recorded, asserted below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def _verify(token: str, code: str):
    def call() -> int | None:
        with db.transaction() as session:
            outcome = verify(session, token, code)
            assert outcome.error is None, outcome.error
            return outcome.card.id if outcome.card else None

    return call


def test_same_code_twice_at_once_and_two_requests_for_one_phone(shop) -> None:
    pid = shop.program("bonus", BONUS_RULES)
    phone = random_phone()
    token = _start(pid, phone)
    code = sms_code(phone)
    first, second = _race(_verify(token, code), _verify(token, code))
    assert isinstance(first, int) and first == second

    other = random_phone()
    a, b = _start(pid, other), None
    code_a = sms_code(other)
    b = _start(pid, other)
    code_b = sms_code(other)
    results = _race(_verify(a, code_a), _verify(b, code_b))
    assert all(isinstance(r, int) for r in results), results
    assert results[0] == results[1]
    with db.read() as session:
        customers = session.scalar(
            select(func.count()).select_from(Customer).where(Customer.merchant_id == shop.merchant_id)
        )
        cards = session.scalar(select(func.count()).select_from(Card).where(Card.program_id == pid))
    assert customers == 2 and cards == 2
