"""Outbox handlers of enrollment: sending SMS, purging stale codes and rate counters."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import delete

from loyalwallet import db
from loyalwallet.enrollment import sms
from loyalwallet.enrollment.models import OtpChallenge, RateHit
from loyalwallet.enrollment.rules import DAY
from loyalwallet.merchants.models import Merchant
from loyalwallet.outbox.handlers import Delivery, Permanent, Retry

log = logging.getLogger("loyalwallet.sms")


def send_sms(msg: Delivery) -> None:
    if msg.merchant_id is None:
        raise Permanent("an SMS needs a merchant")
    not_after = msg.payload.get("not_after")
    if not_after and dt.datetime.fromisoformat(not_after) <= db.utcnow():
        log.info("outbox %s: SMS dropped, it would arrive too late", msg.id)
        return
    phone, text = sms.open_payload(msg.merchant_id, msg.payload)
    with db.read() as session:
        config = sms.config_for(session.get(Merchant, msg.merchant_id))  # the SMS page's choice, else env
    try:
        result = sms.build_provider(config).send(phone, text, sender=config.sender)
    except sms.SmsError as exc:
        if exc.permanent:
            raise Permanent(str(exc)) from exc
        raise Retry(str(exc)) from exc
    log.info("outbox %s: SMS sent by %s (%s)", msg.id, result.provider, result.message_id)


def purge(now: dt.datetime | None = None) -> None:
    """Forget pending joins and rate counters older than a day (the longest window)."""
    cutoff = (now or db.utcnow()) - DAY
    with db.transaction() as session:
        session.execute(delete(RateHit).where(RateHit.created_at < cutoff))
        session.execute(
            delete(OtpChallenge).where(OtpChallenge.created_at < cutoff, OtpChallenge.status != "verified")
        )
        # A verified challenge only keeps the success page alive for a while.
        session.execute(delete(OtpChallenge).where(OtpChallenge.created_at < cutoff - 6 * DAY))
