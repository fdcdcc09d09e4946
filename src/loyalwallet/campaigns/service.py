"""Push campaigns: a message to a segment, now or at a set time, with optional points or
a coupon; delivery stats and the effect against a holdout group.

Sending runs in the worker, in steps that each commit on their own:
`campaign.start` picks the audience (recipients rows, holdout drawn) and queues one
`campaign.deliver` row per chunk of cards; each chunk locks its cards, puts the message
on them (campaigns.delivery), queues one `card.changed` for the whole chunk (the wallet
listeners wake its devices in bulk) and marks its recipients sent, in one transaction,
so a retried chunk never messages or credits a card twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

import orjson
from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from loyalwallet import db
from loyalwallet.campaigns import segments
from loyalwallet.campaigns.delivery import (
    CHANNELS,
    GOOGLE_TOPIC,
    GoogleItem,
    google_cards,
    message_card,
    message_cards,
    queue_google_messages,
)
from loyalwallet.campaigns.models import Campaign, CampaignRecipient, Offer
from loyalwallet.campaigns.offers import get_offer
from loyalwallet.campaigns.rules import Message, Segment, in_holdout, parse, parse_segment
from loyalwallet.cards.book import cards_changed
from loyalwallet.cards.models import Card
from loyalwallet.checkout.models import Purchase
from loyalwallet.config import env
from loyalwallet.db import UTCDateTime
from loyalwallet.errors import DomainError, Explained, not_found
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.models import Merchant
from loyalwallet.merchants.service import audit, get_merchant, today
from loyalwallet.outbox.handlers import Delivery
from loyalwallet.outbox.models import BULK, OutboxMessage
from loyalwallet.outbox.service import enqueue
from loyalwallet.programs.models import Program
from loyalwallet.wallet.google.messages import batch_counts

log = logging.getLogger("loyalwallet.campaigns")

CHUNK = 100  # cards per campaign.deliver row (one transaction each)
# Larger chunks for channels whose worker marks its recipients as it goes (e-mail marks
# every MARK_EVERY sent: a retried chunk re-sends no more than before), so the chunk's
# own bookkeeping (outbox rows, the audience's read) is paid once for more messages.
CHANNEL_CHUNKS: dict[str, int] = {"email": 500}
# Cards per row of a message-only wallet campaign (no points, no coupon): the chunk is
# messaged in a few bulk statements (delivery.message_cards) and its Google messages go
# in one `google.message` row, sent as MESSAGE_CHUNK / BATCH_SIZE concurrent batch
# requests (Google takes up to 1000 calls per batch request). Bigger chunks: fewer rows,
# claims and transactions per card, the fixed per-chunk work spread over more cards.
MESSAGE_CHUNK = int(env("CAMPAIGN_MESSAGE_CHUNK", "1000") or 1000)


def chunk_size(c: Campaign) -> int:
    """Cards per campaign.deliver row of this campaign."""
    if c.channel == "wallet" and not c.points and c.offer_id is None:
        return MESSAGE_CHUNK
    return CHANNEL_CHUNKS.get(c.channel, CHUNK)


EFFECT_DAYS = 7
EDITABLE = ("draft", "scheduled")


def _segment_spec(raw: dict[str, Any] | None) -> Segment:
    spec = parse_segment(raw)
    if not spec.marketing_consent:
        raise DomainError(
            "validation_error",
            "campaigns go only to guests who agreed to marketing",
            field="segment.marketing_consent",
        )
    return spec


def own_programs(session: Session, merchant_id: int, spec: Segment) -> None:
    """A segment's programme ids must be this merchant's (another's would match nothing,
    and saying so tells the merchant the id exists)."""
    if not spec.program_ids:
        return
    wanted = set(spec.program_ids)
    found = set(
        session.scalars(select(Program.id).where(Program.merchant_id == merchant_id, Program.id.in_(wanted)))
    )
    if wanted - found:
        raise DomainError(
            "validation_error", "segment.program_ids: no such program", field="segment.program_ids"
        )


def audience(session: Session, merchant: Merchant, spec: Segment, now: dt.datetime | None = None) -> int:
    now = now or db.utcnow()
    return segments.count(session, merchant.id, spec, now, today(merchant, now))


def preview(session: Session, actor: Actor, raw: dict[str, Any] | None) -> dict[str, Any]:
    """How many guests a segment reaches now (and how many more without the consent filter)."""
    spec = parse_segment(raw)
    own_programs(session, actor.merchant_id, spec)
    merchant = get_merchant(session, actor.merchant_id)
    now = db.utcnow()
    local = today(merchant, now)
    reached = segments.count(session, merchant.id, spec, now, local)
    everyone = segments.count(session, merchant.id, spec, now, local, consent=False)
    sample = session.scalars(
        select(Card.code).where(
            Card.id.in_(segments.card_ids(session, merchant.id, spec, now, local).limit(10))
        )
    ).all()
    return {"count": reached, "without_consent": everyone - reached, "sample": list(sample)}


def view(session: Session, c: Campaign, *, detailed: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": c.id,
        "name": c.name,
        "status": c.status,
        "segment": c.segment,
        "header": c.header,
        "body": c.body,
        "points": c.points,
        "channel": c.channel,
        "sms": {**(c.sms or {}), "spent_messages": c.sms_messages, "spent_cost": c.sms_cost}
        if c.channel == "sms"
        else None,
        "offer_id": c.offer_id,
        "holdout_pct": c.holdout_bp / 100,
        "scheduled_at": c.scheduled_at.isoformat() if c.scheduled_at else None,
        "started_at": c.started_at.isoformat() if c.started_at else None,
        "finished_at": c.finished_at.isoformat() if c.finished_at else None,
        "recipients": c.recipients,
        "holdout": c.holdout,
        "error": c.error,
        "created_at": c.created_at.isoformat(),
    }
    if detailed:
        out["stats"] = stats(session, c)
        out["effect"] = effect(session, c)
    return out


def get(session: Session, actor: Actor, campaign_id: int) -> Campaign:
    c = session.get(Campaign, campaign_id)
    if c is None or c.merchant_id != actor.merchant_id:
        raise not_found("campaign")
    return c


def _fields(session: Session, actor: Actor, c: Campaign, body: dict[str, Any]) -> None:
    if "name" in body:
        name = str(body["name"] or "").strip()
        if not name:
            raise DomainError("validation_error", "a campaign needs a name", field="name")
        c.name = name[:200]
    if "segment" in body:
        spec = _segment_spec(body["segment"])
        own_programs(session, actor.merchant_id, spec)
        c.segment = spec.model_dump(mode="json", exclude_none=True)
    if "header" in body or "body" in body:
        msg = parse(
            Message, {"header": body.get("header", c.header), "body": body.get("body", c.body)}, "message"
        )
        c.header, c.body = msg.header, msg.body
    if "points" in body:
        points = body["points"] or 0
        if not isinstance(points, int) or not 0 <= points <= 10**6:
            raise DomainError("validation_error", "points must be 0..1000000", field="points")
        c.points = points
    if "offer_id" in body:
        offer_id = body["offer_id"]
        if offer_id is not None:
            offer = get_offer(session, actor.merchant_id, offer_id)
            if offer.status != "active":
                raise DomainError("validation_error", "the offer is archived", field="offer_id")
        c.offer_id = offer_id
    if "holdout_pct" in body:
        pct = body["holdout_pct"] or 0
        if not isinstance(pct, int | float) or not 0 <= pct <= 50:
            raise DomainError("validation_error", "holdout_pct must be 0..50", field="holdout_pct")
        c.holdout_bp = round(pct * 100)
    if body.get("channel") is not None:
        if body["channel"] != "wallet" and body["channel"] not in CHANNELS:
            raise DomainError("validation_error", "this channel is not set up", field="channel")
        c.channel = body["channel"]
    _sms_fields(c, body)


def _sms_fields(c: Campaign, body: dict[str, Any]) -> None:
    """An SMS campaign's caps (messages, cost in minor units; None lifts one); a change of
    what or whom it sends drops the cost estimate (messaging.campaign_sms)."""
    sms = dict(c.sms or {})
    for key in ("cap_messages", "cap_cost"):
        if key in body:
            value = body[key]
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise Explained(
                    "validation_error", "{key} is a positive whole number", key=key, extra={"field": key}
                )
            sms[key] = value
    if any(k in body for k in ("segment", "header", "body", "channel")):
        sms.pop("estimate", None)
    c.sms = sms


def create(session: Session, actor: Actor, body: dict[str, Any]) -> Campaign:
    """A draft; with `send_now` it starts at once, with `scheduled_at` it waits for then."""
    actor.require("manager")
    now = db.utcnow()
    c = Campaign(
        merchant_id=actor.merchant_id,
        status="draft",
        segment={},
        header="",
        body="",
        points=0,
        holdout_bp=0,
        recipients=0,
        holdout=0,
        actor_type=actor.kind,
        actor_id=actor.id,
        created_at=now,
        updated_at=now,
    )
    _fields(session, actor, c, {"segment": {}, **body})
    session.add(c)
    session.flush()
    audit(session, actor, "campaign.create", "campaign", c.id, {"name": c.name})
    if body.get("send_now"):
        send(session, actor, c.id)
    elif body.get("scheduled_at") is not None:
        schedule(session, actor, c.id, body["scheduled_at"])
    return c


def change(session: Session, actor: Actor, campaign_id: int, body: dict[str, Any]) -> Campaign:
    actor.require("manager")
    c = get(session, actor, campaign_id)
    if c.status not in EDITABLE:
        raise Explained("conflict", "a {status} campaign cannot be changed", status=c.status)
    _fields(session, actor, c, body)
    c.updated_at = db.utcnow()
    audit(
        session, actor, "campaign.update", "campaign", c.id, {k: v for k, v in body.items() if k != "segment"}
    )
    return c


def _check_ready(session: Session, c: Campaign, now: dt.datetime) -> None:
    if not c.header or not c.body:
        raise DomainError("validation_error", "the campaign needs a header and a body", field="body")
    if c.channel != "wallet" and (c.points or c.offer_id is not None):
        raise DomainError("validation_error", "points and coupons go with a wallet campaign", field="channel")
    if c.channel == "sms" and not (c.sms or {}).get("estimate"):
        raise DomainError("conflict", "estimate the SMS campaign's cost first (POST .../sms-estimate)")
    merchant = get_merchant(session, c.merchant_id)
    if audience(session, merchant, _segment_spec(c.segment), now) == 0:
        raise DomainError("segment_empty", "no guest in this segment can receive marketing now")
    if c.offer_id is not None:
        offer = get_offer(session, c.merchant_id, c.offer_id)
        if offer.status != "active":
            raise DomainError("conflict", "the campaign's offer is archived")


def send(session: Session, actor: Actor, campaign_id: int) -> Campaign:
    actor.require("manager")
    c = get(session, actor, campaign_id)
    if c.status not in EDITABLE:
        raise Explained("conflict", "the campaign is already {status}", status=c.status)
    now = db.utcnow()
    _check_ready(session, c, now)
    c.status = "sending"
    c.scheduled_at = None
    c.started_at = now
    c.updated_at = now
    enqueue(session, c.merchant_id, "campaign.start", {"campaign_id": c.id}, priority=BULK)
    audit(session, actor, "campaign.send", "campaign", c.id)
    return c


def schedule(session: Session, actor: Actor, campaign_id: int, when: dt.datetime) -> Campaign:
    actor.require("manager")
    c = get(session, actor, campaign_id)
    if c.status not in EDITABLE:
        raise Explained("conflict", "the campaign is already {status}", status=c.status)
    now = db.utcnow()
    if when.tzinfo is None:
        raise DomainError("validation_error", "scheduled_at needs a time zone", field="scheduled_at")
    if when <= now:
        raise DomainError("validation_error", "scheduled_at must be in the future", field="scheduled_at")
    if when > now + dt.timedelta(days=366):
        raise DomainError("validation_error", "scheduled_at is more than a year away", field="scheduled_at")
    _check_ready(session, c, now)
    c.status = "scheduled"
    c.scheduled_at = when.astimezone(dt.UTC)
    c.updated_at = now
    # The row waits in the outbox until then; a later reschedule queues another, and
    # the stale one finds the campaign not yet due and does nothing.
    enqueue(session, c.merchant_id, "campaign.start", {"campaign_id": c.id}, delay=when - now, priority=BULK)
    audit(session, actor, "campaign.schedule", "campaign", c.id, {"at": c.scheduled_at.isoformat()})
    return c


def cancel(session: Session, actor: Actor, campaign_id: int) -> Campaign:
    """Stops a scheduled campaign, or what is left of one being sent."""
    actor.require("manager")
    c = get(session, actor, campaign_id)
    if c.status not in ("draft", "scheduled", "sending"):
        raise Explained("conflict", "a {status} campaign cannot be cancelled", status=c.status)
    c.status = "cancelled"
    c.updated_at = db.utcnow()
    audit(session, actor, "campaign.cancel", "campaign", c.id)
    return c


# --- the worker's side ---------------------------------------------------------------


def start(msg: Delivery) -> None:
    """campaign.start: pick the audience, draw the holdout and queue its chunks (one
    transaction). The recipient rows are written by the chunks (write_recipients), in
    parallel and in the transaction that messages their cards: the start does no per-card
    writing, so the first chunk runs sooner."""
    with db.transaction() as session:
        c = session.execute(
            db.for_update(select(Campaign).where(Campaign.id == msg.payload["campaign_id"]))
        ).scalar()
        if c is None:
            return
        now = db.utcnow()
        if c.status == "scheduled":
            if c.scheduled_at is None or c.scheduled_at > now + dt.timedelta(seconds=5):
                return  # rescheduled since: a later row will start it
            c.status, c.started_at = "sending", now
        elif c.status != "sending" or c.recipients or c.holdout:
            return  # cancelled, or already started by an earlier try of this row
        merchant = get_merchant(session, c.merchant_id)
        spec = _segment_spec(c.segment)
        ids = list(session.scalars(segments.card_ids(session, merchant.id, spec, now, today(merchant, now))))
        if not ids:
            c.status, c.error, c.finished_at = (
                "failed",
                "the segment was empty when the campaign started",
                now,
            )
            return
        size = chunk_size(c)
        chunks: list[tuple[list[int], list[int]]] = []  # (cards to message, holdout cards)
        sends, held = [], []
        for card_id in ids:
            if in_holdout(c.id, card_id, c.holdout_bp):
                held.append(card_id)
                continue
            sends.append(card_id)
            if len(sends) == size:
                chunks.append((sends, held))
                sends, held = [], []
        if sends:
            chunks.append((sends, held))
        elif held and chunks:  # held cards after the last full chunk: written by that chunk
            chunks[-1][1].extend(held)
        elif held:
            chunks.append(([], held))
        c.holdout = sum(len(h) for _, h in chunks)
        c.recipients = len(ids) - c.holdout
        c.updated_at = now
        if not c.recipients:  # everyone drawn into the holdout: nothing to deliver
            write_recipients(session, c, [], ids)
            c.status, c.finished_at = "sent", now
            return
        for send_ids, held_ids in chunks:
            payload: dict[str, Any] = {"campaign_id": c.id, "card_ids": send_ids}
            if held_ids:
                payload["held"] = held_ids
            enqueue(session, c.merchant_id, "campaign.deliver", payload)


def write_recipients(
    session: Session,
    c: Campaign,
    card_ids: list[int],
    held: list[int],
    status: Mapping[int, tuple[str, str | None]] | None = None,
    now: dt.datetime | None = None,
) -> list[int]:
    """A chunk's recipient rows in one statement: `card_ids` "pending" (or what `status`
    says for a card: (status, error)), `held` "holdout". A row already there (a retried
    chunk, or a campaign started before the chunks wrote their rows) keeps its status,
    except a "pending" one, which takes the status given. Returns the cards whose row
    this call wrote or moved off "pending": the ones this chunk must deliver."""
    status = status or {}
    rows = [(i, False, *status.get(i, ("pending", None))) for i in card_ids]
    rows += [(i, True, "holdout", None) for i in held]
    if not rows:
        return []
    now = now or db.utcnow()
    if not db.is_sqlite():
        doc = orjson.dumps([{"card_id": i, "held": h, "status": st, "error": e} for i, h, st, e in rows])
        got = session.execute(
            _PG_RECIPIENTS,
            {"merchant_id": c.merchant_id, "campaign_id": c.id, "now": now, "rows": doc.decode()},
        )
        return [card_id for card_id, held_row in got if not held_row]
    # SQLite: the write transaction holds the database (BEGIN IMMEDIATE), so reading the
    # rows there and then writing is race-free; one executemany for the writes.
    there = dict(
        session.execute(
            select(CampaignRecipient.card_id, CampaignRecipient.status).where(
                CampaignRecipient.campaign_id == c.id, CampaignRecipient.card_id.in_([r[0] for r in rows])
            )
        ).all()
    )
    rows = [r for r in rows if there.get(r[0], "pending") == "pending"]
    if rows:
        stmt = sqlite_insert(CampaignRecipient)
        stmt = stmt.on_conflict_do_update(
            index_elements=["campaign_id", "card_id"],
            set_={
                "status": stmt.excluded.status,
                "error": stmt.excluded.error,
                "sent_at": stmt.excluded.sent_at,
            },
        )
        session.execute(
            stmt,
            [
                {
                    "merchant_id": c.merchant_id,
                    "campaign_id": c.id,
                    "card_id": card_id,
                    "holdout": held_row,
                    "status": state,
                    "error": error,
                    "sent_at": now if state == "sent" else None,
                }
                for card_id, held_row, state, error in rows
            ],
        )
    return [r[0] for r in rows if not r[1]]


# PostgreSQL: the chunk's rows from ONE bound JSON document (orjson; arrays of text
# would be escaped per element by the driver, in Python).
_PG_RECIPIENTS = text(
    """
    INSERT INTO campaign_recipients (merchant_id, campaign_id, card_id, holdout, status, error, sent_at)
    SELECT :merchant_id, :campaign_id, u.card_id, u.held, u.status, u.error,
           CASE WHEN u.status = 'sent' THEN :now END
    FROM json_to_recordset(CAST(:rows AS JSON)) AS u(card_id BIGINT, held BOOLEAN, status TEXT, error TEXT)
    ON CONFLICT (campaign_id, card_id) DO UPDATE
        SET status = excluded.status, error = excluded.error, sent_at = excluded.sent_at
        WHERE campaign_recipients.status = 'pending'
    RETURNING card_id, holdout
    """
).bindparams(bindparam("now", type_=UTCDateTime()))


def deliver(msg: Delivery) -> None:
    """campaign.deliver: write one chunk's recipient rows and message its cards, in one
    transaction, so a retry skips the ones done (their rows are no longer "pending").
    The chunk's cards are locked in one statement (in id order, the lock order
    everywhere) and marked in bulk."""
    campaign_id = msg.payload["campaign_id"]
    card_ids = [int(i) for i in msg.payload["card_ids"]]
    held = [int(i) for i in msg.payload.get("held") or []]
    with db.transaction() as session:
        c = session.get(Campaign, campaign_id)
        if c is None:
            return
        now = db.utcnow()
        if c.status == "cancelled":
            cancelled = dict.fromkeys(card_ids, ("skipped", "campaign cancelled"))
            write_recipients(session, c, card_ids, held, cancelled, now)
            return
        if c.channel == "wallet" and not c.points and c.offer_id is None:
            _deliver_message_only(session, c, card_ids, held, now, msg.created_at)
            return
        write_recipients(session, c, card_ids, held, now=now)
        pending = dict(
            session.execute(
                select(CampaignRecipient.card_id, CampaignRecipient.id).where(
                    CampaignRecipient.campaign_id == campaign_id,
                    db.in_ids(CampaignRecipient.card_id, card_ids),
                    CampaignRecipient.status == "pending",
                )
            ).all()
        )
        marks: dict[str, list[int]] = {"sent": [], "skipped": []}
        changes: dict[str, list[int]] = {}  # touch reason -> card ids: one card.changed each
        google_items: list[GoogleItem] = []  # one google.message row for the chunk
        if c.channel != "wallet":
            CHANNELS[c.channel](session, c, pending, now)
            return
        offer = session.get(Offer, c.offer_id) if c.offer_id else None
        in_google = google_cards(session, list(pending))
        stmt = (
            select(Card, Program)
            .join(Program, Program.id == Card.program_id)
            .where(Card.id.in_(list(pending)))
            .order_by(Card.id)
        )
        rows = session.execute(stmt if db.is_sqlite() else stmt.with_for_update(of=Card)).all()
        marks["skipped"] += [pending[i] for i in set(pending) - {card.id for card, _ in rows}]
        for card, program in rows:
            recipient_id = pending[card.id]
            if card.status != "active":
                marks["skipped"].append(recipient_id)
                continue
            try:
                sent = message_card(
                    session,
                    card,
                    program,
                    header=c.header,
                    body=c.body,
                    message_id=f"campaign-{c.id}-{card.id}",
                    source="campaign",
                    source_id=c.id,
                    points=c.points,
                    offer=offer,
                    google=card.id in in_google,
                    now=now,
                    changes=changes,
                    google_items=google_items,
                )
            except DomainError as exc:  # the offer ran out or ended: this guest gets nothing
                _mark(session, [recipient_id], "failed", now, exc.detail[:200])
                continue
            if sent.coupon is not None:
                session.execute(
                    update(CampaignRecipient)
                    .where(CampaignRecipient.id == recipient_id)
                    .values(status="sent", sent_at=now, coupon_id=sent.coupon.id)
                )
            else:
                marks["sent"].append(recipient_id)
        for reason, changed in changes.items():
            cards_changed(session, c.merchant_id, changed, reason)
        queue_google_messages(session, c.merchant_id, google_items, f"campaign-{c.id}", place=msg.created_at)
        _mark(session, marks["sent"], "sent", now)
        _mark(session, marks["skipped"], "skipped", now, "card blocked or gone")
        session.flush()
        _finish_if_done(session, c, now)


def _deliver_message_only(
    session: Session,
    c: Campaign,
    card_ids: list[int],
    held: list[int],
    now: dt.datetime,
    place: dt.datetime,
) -> None:
    """A campaign without points or a coupon: the chunk messaged in bulk
    (delivery.message_cards); its recipient rows written "sent" / "skipped" in the one
    statement that also tells which cards this try must message (write_recipients)."""

    def claim(active: list[int], inactive: list[int]) -> list[int]:
        status: dict[int, tuple[str, str | None]] = dict.fromkeys(active, ("sent", None))
        status.update(dict.fromkeys(inactive, ("skipped", "card blocked or gone")))
        return write_recipients(session, c, card_ids, held, status, now)

    message_cards(
        session,
        c.merchant_id,
        card_ids,
        header=c.header,
        body=c.body,
        batch=f"campaign-{c.id}",
        claim=claim,
        now=now,
        place=place,
    )
    _finish_if_done(session, c, now)


def _mark(session: Session, ids: list[int], status: str, now: dt.datetime, error: str | None = None) -> None:
    if ids:
        session.execute(
            update(CampaignRecipient)
            .where(db.in_ids(CampaignRecipient.id, ids))
            .values(status=status, error=error, sent_at=now if status == "sent" else None)
        )


def _finish_if_done(session: Session, c: Campaign, now: dt.datetime) -> bool:
    if c.status != "sending":
        return False
    # The campaign row lock orders the chunks' last statements: the chunk that takes it
    # last counts after the others committed (READ COMMITTED), so one of them sees 0.
    # FOR NO KEY UPDATE: the chunks' recipient inserts hold KEY SHARE on the row (their
    # foreign key), which FOR UPDATE would wait for: two chunks would deadlock.
    lock = select(Campaign.id).where(Campaign.id == c.id)
    session.execute(lock if db.is_sqlite() else lock.with_for_update(key_share=True))  # FOR NO KEY UPDATE
    # Done when every recipient row is written (the chunks write them) and none is pending.
    written, left = session.execute(
        select(func.count(), func.count().filter(CampaignRecipient.status == "pending")).where(
            CampaignRecipient.campaign_id == c.id
        )
    ).one()
    if left or written < c.recipients + c.holdout:
        return False
    c.status, c.finished_at, c.updated_at = "sent", now, now
    return True


def finish_if_done(session: Session, campaign_id: int, now: dt.datetime) -> bool:
    """For a channel's worker that marked the last recipients (campaigns.delivery.CHANNELS)."""
    c = session.get(Campaign, campaign_id)
    return c is not None and _finish_if_done(session, c, now)


def finish_stragglers() -> int:
    """Periodic safety net: a campaign whose last chunk died between its commit and the
    check (or was cancelled mid-way) is marked sent here."""
    done = 0
    with db.read() as session:
        ids = session.scalars(
            select(Campaign.id).where(Campaign.status == "sending", Campaign.recipients > 0)
        ).all()
    for campaign_id in ids:
        with db.transaction() as session:
            c = session.get(Campaign, campaign_id)
            if c is not None and _finish_if_done(session, c, db.utcnow()):
                done += 1
    return done


# --- numbers -------------------------------------------------------------------------


def stats(session: Session, c: Campaign) -> dict[str, int]:
    """Recipients by status, and the Google Wallet messages the provider refused."""
    rows = dict(
        session.execute(
            select(CampaignRecipient.status, func.count())
            .where(CampaignRecipient.campaign_id == c.id)
            .group_by(CampaignRecipient.status)
        ).all()
    )
    out = {k: int(rows.get(k, 0)) for k in ("pending", "sent", "failed", "skipped", "holdout", "bounced")}
    # Rows not written yet (their chunk has not run): pending, or in the holdout group.
    written = sum(int(n) for n in rows.values())
    unwritten_held = max(0, c.holdout - out["holdout"])
    out["holdout"] += unwritten_held
    out["pending"] += max(0, c.recipients + c.holdout - written - unwritten_held)
    google = dict(
        session.execute(
            select(OutboxMessage.status, func.count())
            .where(
                OutboxMessage.merchant_id == c.merchant_id,
                OutboxMessage.topic == GOOGLE_TOPIC,
                OutboxMessage.payload["message_id"].as_string().like(f"campaign-{c.id}-%"),
            )
            .group_by(OutboxMessage.status)
        ).all()
    )
    # Batched rows (one per chunk): counted per card by the Google part.
    batched = batch_counts(session, c.merchant_id, f"campaign-{c.id}")
    out["google_delivered"] = int(google.get("done", 0)) + batched["sent"]
    out["google_failed"] = int(google.get("dead", 0)) + batched["failed"]
    out["google_pending"] = int(google.get("pending", 0)) + batched["pending"]
    if c.channel == "sms":  # SMS.ru's delivery reports (messaging.reports)
        from loyalwallet.messaging.reports import campaign_counts

        out.update(campaign_counts(session, c.id))
    return out


def effect(session: Session, c: Campaign) -> dict[str, Any] | None:
    """Purchases in the EFFECT_DAYS after the start: recipients vs the holdout group."""
    if c.started_at is None or c.status in ("draft", "scheduled"):
        return None
    since = c.started_at
    until = since + dt.timedelta(days=EFFECT_DAYS)

    def group(held: bool) -> dict[str, int]:
        members = select(CampaignRecipient.card_id).where(
            CampaignRecipient.campaign_id == c.id,
            CampaignRecipient.holdout.is_(held),
            CampaignRecipient.status.in_(("holdout",) if held else ("sent",)),
        )
        size = int(session.scalar(select(func.count()).select_from(members.subquery())) or 0)
        row = session.execute(
            select(
                func.count(func.distinct(Purchase.card_id)),
                func.count(Purchase.id),
                func.coalesce(func.sum(Purchase.amount - Purchase.refunded_amount), 0),
            ).where(
                Purchase.merchant_id == c.merchant_id,
                Purchase.card_id.in_(members),
                Purchase.created_at >= since,
                Purchase.created_at < until,
            )
        ).one()
        buyers, purchases, revenue = int(row[0]), int(row[1]), int(row[2])
        return {
            "guests": size,
            "buyers": buyers,
            "purchases": purchases,
            "revenue": revenue,
            # Basis points: 1250 = 12.5 % of the group bought something.
            "conversion_bp": buyers * 10000 // size if size else 0,
            "revenue_per_guest": revenue // size if size else 0,
        }

    sent, held = group(False), group(True)
    return {
        "days": EFFECT_DAYS,
        "since": since.isoformat(),
        "until": until.isoformat(),
        "complete": db.utcnow() >= until,
        "recipients": sent,
        "holdout": held,
        "uplift_bp": sent["conversion_bp"] - held["conversion_bp"] if held["guests"] else None,
    }


def list_(session: Session, actor: Actor, status: str | None = None, limit: int = 100) -> list[Campaign]:
    stmt = select(Campaign).where(Campaign.merchant_id == actor.merchant_id)
    if status:
        stmt = stmt.where(Campaign.status == status)
    return list(session.scalars(stmt.order_by(Campaign.id.desc()).limit(limit)))


def recipients(
    session: Session, actor: Actor, campaign_id: int, status: str | None, limit: int
) -> list[dict[str, Any]]:
    c = get(session, actor, campaign_id)
    stmt = (
        select(CampaignRecipient, Card.code)
        .join(Card, Card.id == CampaignRecipient.card_id)
        .where(CampaignRecipient.campaign_id == c.id)
    )
    if status:
        stmt = stmt.where(CampaignRecipient.status == status)
    rows = session.execute(stmt.order_by(CampaignRecipient.id).limit(limit)).all()
    return [
        {
            "card": code,
            "status": r.status,
            "holdout": r.holdout,
            "error": r.error,
            "sent_at": r.sent_at.isoformat() if r.sent_at else None,
        }
        for r, code in rows
    ]
