"""SMS campaigns through the SMS provider (SMS.ru): only guests with marketing consent
and a phone; a cost estimate before sending (SMS.ru's sms/cost for the audience's
numbers, kept on the campaign; sending without one is refused); per-campaign caps on the
number of messages and their cost, reserved message by message (an UPDATE that holds
only under the cap, so chunks delivered at once never overspend). A recipient over the
cap is skipped with the reason.

campaigns.delivery.CHANNELS["sms"] hands a chunk to an `sms.campaign` row; the worker
asks the cost of its numbers (one sms/cost call), reserves, sends one by one."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from loyalwallet import crypto, db
from loyalwallet.campaigns import segments
from loyalwallet.campaigns.models import Campaign, CampaignRecipient
from loyalwallet.campaigns.rules import Segment
from loyalwallet.campaigns.service import finish_if_done, get
from loyalwallet.cards.models import Card
from loyalwallet.config import env
from loyalwallet.customers.models import Customer
from loyalwallet.enrollment import sms
from loyalwallet.errors import DomainError, Explained
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.models import Merchant
from loyalwallet.merchants.service import audit, get_merchant, today
from loyalwallet.messaging import reports, suppression
from loyalwallet.outbox.handlers import Delivery, Permanent, Retry
from loyalwallet.outbox.service import enqueue

TOPIC = "sms.campaign"
MAX_ESTIMATE = 20_000  # numbers priced in one estimate (200 sms/cost calls)


def text_of(c: Campaign, merchant_name: str) -> str:
    """One SMS: the café's name, the header and the body (plain text)."""
    return f"{merchant_name}: {c.header}. {c.body}"[:600]


def _audience_phones(session: Session, c: Campaign, merchant: Merchant, now: dt.datetime) -> list[str]:
    spec = Segment.model_validate(c.segment or {})
    ids = segments.card_ids(session, merchant.id, spec, now, today(merchant, now)).limit(MAX_ESTIMATE + 1)
    rows = session.execute(
        select(Customer.phone_enc)
        .join(Card, Card.customer_id == Customer.id)
        .where(Card.id.in_(ids.scalar_subquery()))
    ).all()
    phones = [crypto.open_(r[0], merchant_id=merchant.id, column="phone") for r in rows]
    return sorted({p for p in phones if p})


def estimate(actor: Actor, campaign_id: int) -> dict[str, Any]:
    """Ask the provider what the campaign would cost now; kept on the campaign."""
    actor.require("manager")
    now = db.utcnow()
    with db.read() as session:
        c = get(session, actor, campaign_id)
        if c.channel != "sms":
            raise DomainError("conflict", "only an SMS campaign has a cost estimate")
        merchant = get_merchant(session, actor.merchant_id)
        phones = _audience_phones(session, c, merchant, now)
        text = text_of(c, merchant.name)
    if len(phones) > MAX_ESTIMATE:
        raise Explained(
            "validation_error",
            "the segment has more than {max_estimate} numbers",
            max_estimate=MAX_ESTIMATE,
            extra={"field": "segment"},
        )
    try:
        priced = sms.get_provider().cost(phones, text) if phones else {}
    except sms.SmsError as exc:
        raise Explained(
            "sms_unavailable", "the SMS provider did not price the campaign: {exc}", exc=exc
        ) from None
    ok = [v for v in priced.values() if v is not None]
    result = {
        "recipients": len(ok),
        "refused": len(priced) - len(ok),
        "messages": sum(v[0] for v in ok),
        "cost": sum(v[1] for v in ok),
        "currency": "RUB",
        "at": now.isoformat(),
    }
    with db.transaction() as session:
        c = get(session, actor, campaign_id)
        c.sms = {**(c.sms or {}), "estimate": result}
        audit(session, actor, "campaign.sms_estimate", "campaign", c.id, result)
    return {**result, **caps_view(c)}


def caps_view(c: Campaign) -> dict[str, Any]:
    s = c.sms or {}
    return {
        "cap_messages": s.get("cap_messages"),
        "cap_cost": s.get("cap_cost"),
        "spent_messages": c.sms_messages,
        "spent_cost": c.sms_cost,
    }


def hand_over(session: Session, c: Campaign, pending: dict[int, int], now: dt.datetime) -> None:
    """CHANNELS["sms"]: one `sms.campaign` row for the chunk (recipients stay pending)."""
    if pending:
        enqueue(
            session, c.merchant_id, TOPIC, {"campaign_id": c.id, "recipient_ids": sorted(pending.values())}
        )


def _reserve(c: Campaign, parts: int, cost: int) -> bool:
    """Count one message against the caps, if it fits (atomic across workers)."""
    caps = c.sms or {}
    stmt = update(Campaign).where(Campaign.id == c.id)
    if caps.get("cap_messages") is not None:
        stmt = stmt.where(Campaign.sms_messages + parts <= int(caps["cap_messages"]))
    if caps.get("cap_cost") is not None:
        stmt = stmt.where(Campaign.sms_cost + cost <= int(caps["cap_cost"]))
    with db.transaction() as session:
        done = session.execute(  # type: ignore[attr-defined]  # a CursorResult at run time
            stmt.values(sms_messages=Campaign.sms_messages + parts, sms_cost=Campaign.sms_cost + cost)
        ).rowcount
    return bool(done)


def _release(campaign_id: int, parts: int, cost: int) -> None:
    with db.transaction() as session:
        session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(sms_messages=Campaign.sms_messages - parts, sms_cost=Campaign.sms_cost - cost)
        )


def _mark(
    campaign_id: int,
    marks: dict[str, list[int]],
    reasons: dict[str, str],
    sms_ids: dict[int, str | None] | None = None,
    phones: dict[int, str] | None = None,
) -> None:
    now = db.utcnow()
    with db.transaction() as session:
        c = session.get(Campaign, campaign_id)
        for recipient_id, sms_id in (sms_ids or {}).items():
            if c is not None and recipient_id in marks.get("sent", ()):
                reports.record_sms(
                    session,
                    c.merchant_id,
                    sms_id,
                    campaign_id=campaign_id,
                    recipient_id=recipient_id,
                    phone=(phones or {}).get(recipient_id),
                    now=now,
                )
        for status, ids in marks.items():
            if ids:
                session.execute(
                    update(CampaignRecipient)
                    .where(CampaignRecipient.id.in_(ids), CampaignRecipient.status == "pending")
                    .values(
                        status=status, sent_at=now if status == "sent" else None, error=reasons.get(status)
                    )
                )
        finish_if_done(session, campaign_id, now)


def deliver(msg: Delivery) -> None:
    """sms.campaign: price the chunk's numbers, reserve each under the caps, send."""
    campaign_id = int(msg.payload["campaign_id"])
    ids = [int(i) for i in msg.payload["recipient_ids"]]
    marks: dict[str, list[int]] = {"sent": [], "failed": [], "skipped": [], "capped": []}
    sms_ids: dict[int, str | None] = {}  # recipient -> SMS.ru's sms_id, to follow delivery
    with db.read() as session:
        c = session.get(Campaign, campaign_id)
        if c is None:
            return
        merchant = session.get(Merchant, c.merchant_id)
        assert merchant is not None
        rows = session.execute(
            select(CampaignRecipient.id, Card.status, Customer)
            .join(Card, Card.id == CampaignRecipient.card_id)
            .join(Customer, Customer.id == Card.customer_id)
            .where(CampaignRecipient.id.in_(ids), CampaignRecipient.status == "pending")
            .order_by(CampaignRecipient.id)
        ).all()
        text = text_of(c, merchant.name)
        session.expunge(c)
    marks["skipped"] += sorted(set(ids) - {r[0] for r in rows})
    to_send: list[tuple[int, str]] = []
    opened = [crypto.open_(r[2].phone_enc, merchant_id=merchant.id, column="phone") for r in rows]
    with db.read() as session:  # numbers SMS.ru found no route to: not texted again
        no_route = suppression.suppressed(
            session, merchant.id, "sms", [suppression.key("sms", p) for p in opened if p]
        )
    for (recipient_id, status, customer), phone in zip(rows, opened, strict=True):
        unwanted = c.status == "cancelled" or not customer.marketing_consent or status != "active"
        if unwanted or not phone or suppression.key("sms", phone) in no_route:
            marks["skipped"].append(recipient_id)
        else:
            to_send.append((recipient_id, phone))
    phones = dict(to_send)
    provider = sms.get_provider()
    try:
        priced = provider.cost([p for _, p in to_send], text) if to_send else {}
    except sms.SmsError as exc:
        _mark(campaign_id, _merge(marks), _REASONS)
        if exc.permanent:
            raise Permanent(str(exc)) from exc
        raise Retry(str(exc)) from exc
    try:
        for recipient_id, phone in to_send:
            price = priced.get(phone)
            if price is None:
                marks["failed"].append(recipient_id)
                continue
            if not _reserve(c, *price):
                marks["capped"].append(recipient_id)
                continue
            try:
                result = provider.send(phone, text, sender=env("SMS_SENDER"))
            except sms.SmsError as exc:
                if not exc.permanent:
                    _release(campaign_id, *price)
                    raise
                _release(campaign_id, *price)
                marks["failed"].append(recipient_id)
            else:
                marks["sent"].append(recipient_id)
                sms_ids[recipient_id] = result.message_id
    except sms.SmsError as exc:
        _mark(campaign_id, _merge(marks), _REASONS, sms_ids, phones)  # what went out stays out
        raise Retry(str(exc)) from exc
    _mark(campaign_id, _merge(marks), _REASONS, sms_ids, phones)


_REASONS = {"skipped": "no phone or consent", "failed": "the SMS provider refused the number"}


def _merge(marks: dict[str, list[int]]) -> dict[str, list[int]]:
    """Recipients over the cap are skipped (with their own reason, written after)."""
    capped = marks.pop("capped", [])
    if capped:
        with db.transaction() as session:
            session.execute(
                update(CampaignRecipient)
                .where(CampaignRecipient.id.in_(capped), CampaignRecipient.status == "pending")
                .values(status="skipped", error="over the campaign's SMS cap")
            )
    return marks
