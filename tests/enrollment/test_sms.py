"""SMS: the SMS.ru client against a local fake of its API, and delivery through the outbox."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from fakes import smsru
from loyalwallet import db
from loyalwallet.enrollment import sms
from loyalwallet.enrollment.sms.smsru import SmsRuProvider
from loyalwallet.outbox import worker
from loyalwallet.outbox.models import OutboxMessage


def test_smsru_sends_and_reports_the_message_id(fake_smsru) -> None:
    provider = SmsRuProvider(smsru.API_ID, base_url=fake_smsru.url)
    result = provider.send("+79161112233", "Ваш код: 123456", sender="Zerno")
    assert result.provider == "smsru" and result.message_id and result.message_id.startswith("000000-")
    got = fake_smsru.last_to("+79161112233")
    assert got is not None and got.msg == "Ваш код: 123456" and got.sender == "Zerno"
    assert got.form["json"] == "1" and got.to == "79161112233"


def test_smsru_errors_are_permanent_or_retried(fake_smsru) -> None:
    provider = SmsRuProvider(smsru.API_ID, base_url=fake_smsru.url)
    fake_smsru.fail_next(202, "Неправильно указан номер", per_number=True)
    with pytest.raises(sms.SmsError) as exc:
        provider.send("+79161112233", "x")
    assert exc.value.permanent and exc.value.code == "202"
    fake_smsru.fail_next(220, "Сервис временно недоступен")
    with pytest.raises(sms.SmsError) as exc:
        provider.send("+79161112233", "x")
    assert not exc.value.permanent
    fake_smsru.http_error_next(502)
    with pytest.raises(sms.SmsError) as exc:
        provider.send("+79161112233", "x")
    assert not exc.value.permanent
    with pytest.raises(sms.SmsError) as exc:
        SmsRuProvider("wrong-key", base_url=fake_smsru.url).send("+79161112233", "x")
    assert exc.value.permanent and exc.value.code == "200"
    with pytest.raises(sms.SmsError) as exc:  # nobody listens there
        SmsRuProvider(smsru.API_ID, base_url="http://127.0.0.1:9", timeout=2).send("+79161112233", "x")
    assert not exc.value.permanent


def _sms_rows() -> dict[int, OutboxMessage]:
    with db.read() as session:
        return {r.id: r for r in session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "sms"))}


def test_outbox_delivers_sealed_sms_and_drops_late_ones(fake_smsru, shop) -> None:
    before = set(_sms_rows())
    now = db.utcnow()
    with db.transaction() as session:
        sms.queue_sms(
            session, shop.merchant_id, "+79162223344", "Код: 654321", not_after=now + dt.timedelta(minutes=5)
        )
        sms.queue_sms(
            session, shop.merchant_id, "+79162223355", "Код: 111111", not_after=now - dt.timedelta(seconds=1)
        )
    rows = {i: r for i, r in _sms_rows().items() if i not in before}
    assert len(rows) == 2
    for row in rows.values():  # nothing readable at rest
        assert "7916222" not in str(row.payload) and "Код" not in str(row.payload)
    fake_smsru.fail_next(220, "busy")  # the first try fails and is retried
    worker.drain()
    with db.transaction() as session:
        for row in session.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(list(rows)))):
            row.next_attempt_at = db.utcnow()
    worker.drain()
    after = {i: r for i, r in _sms_rows().items() if i in rows}
    assert all(r.status == "done" for r in after.values())
    assert fake_smsru.last_to("+79162223344").msg == "Код: 654321"
    assert fake_smsru.last_to("+79162223355") is None  # expired before it could be sent


def test_permanent_refusal_dead_letters(fake_smsru, shop) -> None:
    with db.transaction() as session:
        sms.queue_sms(session, shop.merchant_id, "+79162223366", "x")
    fake_smsru.fail_next(207, "Нельзя отправлять на этот номер", per_number=True)
    worker.drain()
    with db.read() as session:
        row = session.scalars(
            select(OutboxMessage).where(OutboxMessage.topic == "sms").order_by(OutboxMessage.id.desc())
        ).first()
        assert row is not None and row.status == "dead" and "207" in (row.last_error or "")
