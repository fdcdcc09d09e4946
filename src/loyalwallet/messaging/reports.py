"""What became of an SMS after SMS.ru accepted it: delivered or not.

Each SMS that SMS.ru accepted (a card link, a campaign message) is recorded with its
sms_id (MessageDelivery, channel "sms"). Its fate arrives two ways:
- SMS.ru's callback (sms.ru/api/callback): POST /sms/callback/<secret> with `data[]`
  entries "sms_status\\n<sms_id>\\n<code>\\n<time>"; we answer "100" as SMS.ru asks. The
  secret in the address is derived from the server's key (`callback_url()`), so only
  whoever was given the address can report; an sms_id we did not record changes nothing;
- a bounded poll of sms/status (`poll`, a periodic job): the messages still on their way
  are asked about after growing pauses (rules.SMS_POLL_PAUSES), in batches of up to 100
  sms_id per call, and given up after the last pause. With LOYALWALLET_SMSRU_CALLBACK=1
  (the callback is registered) the first ask waits an hour: it only catches a lost call.

A final status moves the card send to delivered/undelivered; a campaign's counts are
read from these rows (`campaign_counts`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
from collections import defaultdict
from typing import Any

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from loyalwallet import db
from loyalwallet.config import env
from loyalwallet.enrollment import sms
from loyalwallet.enrollment.limits import derived_key
from loyalwallet.enrollment.links import base_url
from loyalwallet.enrollment.sms.smsru import SmsRuProvider
from loyalwallet.merchants.models import Merchant
from loyalwallet.messaging import rules, suppression
from loyalwallet.messaging.models import CardSend, MessageDelivery

log = logging.getLogger("loyalwallet.messaging")

POLL_BATCH = 100  # sms_id per sms/status call (and rows per merchant per run)
POLL_LIMIT = 500  # rows per run: a backlog drains over several runs


def callback_secret() -> str:
    return hmac.new(derived_key("smsru-callback"), b"v1", hashlib.sha256).hexdigest()[:32]


def callback_url() -> str:
    """The address to give SMS.ru's callback settings (or /callback/add)."""
    return f"{base_url().rstrip('/')}/sms/callback/{callback_secret()}"


def check_secret(secret: str) -> bool:
    return hmac.compare_digest(secret.encode(), callback_secret().encode())


def _callback_on() -> bool:
    return (env("SMSRU_CALLBACK", "0") or "0").lower() in ("1", "true", "yes")


def record_sms(
    session: Session,
    merchant_id: int,
    sms_id: str | None,
    *,
    card_send_id: int | None = None,
    campaign_id: int | None = None,
    recipient_id: int | None = None,
    phone: str | None = None,
    now: dt.datetime | None = None,
) -> None:
    """Remember an accepted SMS (a provider without an id, like the console, is not followed);
    the keyed hash of the phone, so a "no route" report can suppress the number."""
    if not sms_id:
        return
    now = now or db.utcnow()
    first = rules.SMS_POLL_AFTER_CALLBACK if _callback_on() else rules.SMS_POLL_PAUSES[0]
    session.add(
        MessageDelivery(
            merchant_id=merchant_id,
            channel="sms",
            ref=str(sms_id)[:64],
            card_send_id=card_send_id,
            campaign_id=campaign_id,
            recipient_id=recipient_id,
            address_hash=suppression.key("sms", phone) if phone else None,
            status="sent",
            next_poll_at=now + first,
            created_at=now,
            updated_at=now,
        )
    )


def apply(session: Session, row: MessageDelivery, code: int, now: dt.datetime) -> bool:
    """Take SMS.ru's status code for one message; True when it became final now."""
    outcome = rules.sms_outcome(code)
    row.code = str(code)
    row.updated_at = now
    if outcome is None or row.status != "sent":
        return False
    row.status = outcome
    row.next_poll_at = None
    if row.card_send_id is not None:
        session.execute(update(CardSend).where(CardSend.id == row.card_send_id).values(status=outcome))
    if code in rules.SMS_NO_ROUTE and row.address_hash is not None:
        _suppress(session, row, code, now)
    return True


def _suppress(session: Session, row: MessageDelivery, code: int, now: dt.datetime) -> None:
    """SMS.ru found no route to the number: campaigns do not text it again."""
    from loyalwallet.campaigns.models import CampaignRecipient
    from loyalwallet.cards.models import Card

    card_id = None
    if row.card_send_id is not None:
        card_id = session.scalar(select(CardSend.card_id).where(CardSend.id == row.card_send_id))
    elif row.recipient_id is not None:
        card_id = session.scalar(
            select(CampaignRecipient.card_id).where(CampaignRecipient.id == row.recipient_id)
        )
    customer_id = session.scalar(select(Card.customer_id).where(Card.id == card_id)) if card_id else None
    assert row.address_hash is not None
    suppression.add(
        session, row.merchant_id, "sms", row.address_hash, customer_id=customer_id, code=str(code), now=now
    )


def on_callback(entries: list[str]) -> int:
    """The callback's entries; how many messages became final. Unknown ids are ignored."""
    reports = rules.parse_sms_callback(entries)
    if not reports:
        return 0
    now = db.utcnow()
    done = 0
    with db.transaction() as session:
        rows = {
            r.ref: r
            for r in session.scalars(
                select(MessageDelivery).where(
                    MessageDelivery.channel == "sms", MessageDelivery.ref.in_([i for i, _ in reports])
                )
            )
        }
        for sms_id, code in reports:
            row = rows.get(sms_id)
            if row is not None and apply(session, row, code, now):
                done += 1
    return done


def ask_status(provider: SmsRuProvider, sms_ids: list[str]) -> dict[str, int]:
    """sms.ru/api/status: POST /sms/status with api_id, sms_id (comma-separated), json=1 ->
    {sms_id: status code} for the ids SMS.ru answered about. Raises SmsError."""
    try:
        response = provider.client.post(
            f"{provider.base_url}/sms/status",
            data={"api_id": provider.api_id, "sms_id": ",".join(sms_ids), "json": "1"},
        )
    except httpx.HTTPError as exc:
        raise sms.SmsError(f"SMS.ru unreachable: {exc!r}") from exc
    if response.status_code != 200:
        raise sms.SmsError(f"SMS.ru answered HTTP {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        raise sms.SmsError("SMS.ru answered something that is not JSON") from None
    if body.get("status") != "OK":
        raise sms.SmsError(f"SMS.ru refused sms/status: {body.get('status_code')}", permanent=True)
    out: dict[str, int] = {}
    for sms_id, entry in (body.get("sms") or {}).items():
        try:
            out[str(sms_id)] = int(str((entry or {}).get("status_code")))
        except (TypeError, ValueError):
            continue
    return out


def poll(now: dt.datetime | None = None) -> int:
    """Periodic job: ask sms/status about the messages due; how many became final."""
    now = now or db.utcnow()
    with db.read() as session:
        due = session.execute(
            select(MessageDelivery.id, MessageDelivery.merchant_id, MessageDelivery.ref)
            .where(
                MessageDelivery.channel == "sms",
                MessageDelivery.status == "sent",
                MessageDelivery.next_poll_at.is_not(None),
                MessageDelivery.next_poll_at <= now,
            )
            .order_by(MessageDelivery.next_poll_at)
            .limit(POLL_LIMIT)
        ).all()
        by_merchant: dict[int, list[tuple[int, str]]] = defaultdict(list)
        for row_id, merchant_id, ref in due:
            by_merchant[merchant_id].append((row_id, ref))
        providers = {m: sms.get_provider(session.get(Merchant, m)) for m in by_merchant}
    done = 0
    for merchant_id, items in by_merchant.items():
        provider = providers[merchant_id]
        for i in range(0, len(items), POLL_BATCH):
            chunk = items[i : i + POLL_BATCH]
            codes: dict[str, int] = {}
            if isinstance(provider, SmsRuProvider):
                try:
                    codes = ask_status(provider, [ref for _, ref in chunk])
                except sms.SmsError as exc:
                    log.warning("sms/status failed: %s", exc)
                    if not exc.permanent:
                        continue  # asked again next run
            done += _after_poll([row_id for row_id, _ in chunk], codes, now)
    return done


def _after_poll(ids: list[int], codes: dict[str, int], now: dt.datetime) -> int:
    done = 0
    with db.transaction() as session:
        for row in session.scalars(select(MessageDelivery).where(MessageDelivery.id.in_(ids))):
            code = codes.get(row.ref)
            if code is not None and apply(session, row, code, now):
                done += 1
                continue
            if row.status == "sent":
                row.polls += 1
                row.next_poll_at = rules.next_sms_poll(row.polls, now)
                row.updated_at = now
    return done


def campaign_counts(session: Session, campaign_id: int) -> dict[str, int]:
    """Of a campaign's SMS: delivered, undelivered, and still without a report."""
    rows = dict(
        session.execute(
            select(MessageDelivery.status, func.count())
            .where(MessageDelivery.campaign_id == campaign_id, MessageDelivery.channel == "sms")
            .group_by(MessageDelivery.status)
        ).all()
    )
    return {
        "sms_delivered": int(rows.get("delivered", 0)),
        "sms_undelivered": int(rows.get("undelivered", 0)),
        "sms_unreported": int(rows.get("sent", 0)),
    }


def send_counts(session: Session, merchant_id: int) -> dict[str, Any]:
    """Card sends by channel and status (the admin's overview)."""
    rows = session.execute(
        select(CardSend.channel, CardSend.status, func.count())
        .where(CardSend.merchant_id == merchant_id)
        .group_by(CardSend.channel, CardSend.status)
    ).all()
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for channel, status, n in rows:
        out[channel][status] = int(n)
    return dict(out)
