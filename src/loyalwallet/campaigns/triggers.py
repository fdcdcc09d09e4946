"""Automatic triggers: birthday gift, points expiring, lapsed guest, happy hour (on a
schedule in the merchant's time zone), tier up and welcome (as the events happen).

Each fires once per guest per occasion: a TriggerFiring row with a unique
(trigger, card, occasion) is written in the same transaction as the message, under
the card's lock, so retries and overlapping runs never message a guest twice.

Scheduled runs: each scheduled trigger carries `next_run_at`, the next time the schedule
should look at it (its send time in the merchant's zone, plus a fixed per-merchant jitter
of up to TRIGGER_JITTER_SECONDS, so a thousand cafés' 10:00 runs spread over the minutes
after 10:00). The periodic job reads only the due triggers through that index (locked,
SKIP LOCKED, so one process takes each), records the run's local day in last_run_on,
queues `trigger.run` in the outbox's bulk lane and sets the next time. `trigger.run`
lists the guests and queues `trigger.fire` rows of up to CHUNK cards, each one
transaction that queues one `card.changed` and ONE batched `google.message` row for its
cards (as a campaign chunk does; each guest's own text in it); all of them stay in the
bulk lane, behind what people are waiting for.
"""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from loyalwallet import db
from loyalwallet.campaigns import segments
from loyalwallet.campaigns.delivery import (
    CANDIDATE_SOURCES,
    GoogleItem,
    google_cards,
    message_card,
    queue_google_messages,
)
from loyalwallet.campaigns.models import Offer, Trigger, TriggerFiring
from loyalwallet.campaigns.offers import get_offer
from loyalwallet.campaigns.rules import (
    MARKETING_KINDS,
    SCHEDULED_KINDS,
    TRIGGER_KINDS,
    Segment,
    birthday_ranges,
    happy_hour_bounds,
    happy_hour_day,
    jitter_seconds,
    next_birthday,
    next_run,
    parse_params,
    render,
    run_day,
    tier_rank,
)
from loyalwallet.cards.book import cards_changed, lock_card, lock_card_by_id
from loyalwallet.cards.models import Card, LedgerEntry
from loyalwallet.config import env
from loyalwallet.customers.models import Customer
from loyalwallet.errors import DomainError, Explained, not_found
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.models import Merchant
from loyalwallet.merchants.service import audit, get_merchant, merchant_tz
from loyalwallet.outbox.handlers import Delivery
from loyalwallet.outbox.models import BULK
from loyalwallet.outbox.service import enqueue
from loyalwallet.programs.models import Program
from loyalwallet.programs.rules import BonusRules, DiscountRules
from loyalwallet.programs.service import get_program, rules_of
from loyalwallet.text import DEFAULT_LANGUAGE, LANGUAGES, plural

log = logging.getLogger("loyalwallet.triggers")

CHUNK = 100
JITTER_SECONDS = float(env("TRIGGER_JITTER_SECONDS", "600") or 0)
DUE_BATCH = 200  # triggers looked at per transaction of the schedule


def _reschedule(t: Trigger, now: dt.datetime) -> None:
    """After a change: a live scheduled trigger is looked at on the next tick."""
    live = t.enabled and t.archived_at is None and t.kind in SCHEDULED_KINDS
    t.next_run_at = now if live else None


# --- management ------------------------------------------------------------------------


def view(session: Session, t: Trigger) -> dict[str, Any]:
    since = db.utcnow() - dt.timedelta(days=30)
    total, recent, last = session.execute(
        select(
            func.count(),
            func.count().filter(TriggerFiring.created_at >= since),
            func.max(TriggerFiring.created_at),
        ).where(TriggerFiring.trigger_id == t.id)
    ).one()
    return {
        "id": t.id,
        "kind": t.kind,
        "name": t.name,
        "enabled": t.enabled,
        "archived": t.archived_at is not None,
        "archived_at": t.archived_at.isoformat() if t.archived_at else None,
        "program_id": t.program_id,
        "params": t.params,
        "scheduled": t.kind in SCHEDULED_KINDS,
        "marketing": t.kind in MARKETING_KINDS,
        "last_run_on": t.last_run_on.isoformat() if t.last_run_on else None,
        "fired": int(total),
        "fired_30_days": int(recent),
        "last_fired_at": last.isoformat() if isinstance(last, dt.datetime) else None,
        "created_at": t.created_at.isoformat(),
    }


def get(session: Session, actor: Actor, trigger_id: int) -> Trigger:
    t = session.get(Trigger, trigger_id)
    if t is None or t.merchant_id != actor.merchant_id:
        raise not_found("trigger")
    return t


def _validated(
    session: Session, actor: Actor, kind: str, params: dict[str, Any], program_id: int | None
) -> dict[str, Any]:
    parsed = parse_params(kind, params)
    if parsed.offer_id is not None:
        offer = get_offer(session, actor.merchant_id, parsed.offer_id)
        if offer.status != "active":
            raise DomainError("validation_error", "the offer is archived", field="params.offer_id")
    if program_id is not None:
        program = get_program(session, actor.merchant_id, program_id)
        if kind == "tier_up" and program.kind not in ("bonus", "discount"):
            raise DomainError(
                "validation_error", "only bonus and discount programs have tiers", field="program_id"
            )
        if kind == "points_expiring" and program.kind == "iiko":
            # iikoCloud publishes balances, not when points burn (customer/info, get_counters
            # and the transaction report carry no expiry dates): nobody to warn in advance.
            raise DomainError(
                "validation_error",
                "iiko does not tell when its points burn, so this trigger cannot warn iiko guests; "
                "set the reminder up in iiko",
                field="program_id",
            )
    return parsed.model_dump(mode="json", exclude_none=True)


def create(
    session: Session,
    actor: Actor,
    kind: str,
    name: str,
    params: dict[str, Any],
    program_id: int | None = None,
    enabled: bool = True,
) -> Trigger:
    actor.require("manager")
    if kind not in TRIGGER_KINDS:
        raise Explained(
            "validation_error",
            "kind must be one of {trigger_kinds}",
            trigger_kinds=", ".join(TRIGGER_KINDS),
            extra={"field": "kind"},
        )
    now = db.utcnow()
    t = Trigger(
        merchant_id=actor.merchant_id,
        kind=kind,
        name=(name or kind).strip()[:200],
        enabled=enabled,
        program_id=program_id,
        params=_validated(session, actor, kind, params, program_id),
        created_at=now,
        updated_at=now,
    )
    _reschedule(t, now)
    session.add(t)
    session.flush()
    audit(session, actor, "trigger.create", "trigger", t.id, {"kind": kind, "name": t.name})
    return t


def _not_archived(t: Trigger) -> None:
    if t.archived_at is not None:
        raise DomainError("trigger_archived", "the trigger is archived; restore it first")


def change(session: Session, actor: Actor, trigger_id: int, body: dict[str, Any]) -> Trigger:
    actor.require("manager")
    t = get(session, actor, trigger_id)
    _not_archived(t)
    program_id = body.get("program_id", t.program_id)
    if "params" in body or "program_id" in body:
        t.params = _validated(session, actor, t.kind, body.get("params", t.params), program_id)
        t.program_id = program_id
    if body.get("name"):
        t.name = str(body["name"]).strip()[:200]
    if "enabled" in body:
        t.enabled = bool(body["enabled"])
    t.updated_at = db.utcnow()
    _reschedule(t, t.updated_at)
    audit(session, actor, "trigger.update", "trigger", t.id, {k: v for k, v in body.items() if k != "params"})
    return t


def remove(session: Session, actor: Actor, trigger_id: int) -> Trigger:
    """Deleting archives: the trigger never fires again and leaves the lists, but its
    firings (who got what, and "once per guest per occasion") stay."""
    actor.require("manager")
    t = get(session, actor, trigger_id)
    if t.archived_at is None:
        t.archived_at = t.updated_at = db.utcnow()
        t.enabled = False
        t.next_run_at = None
        audit(session, actor, "trigger.archive", "trigger", t.id, {"kind": t.kind, "name": t.name})
    return t


def restore(session: Session, actor: Actor, trigger_id: int) -> Trigger:
    """Back from the archive, switched off (the manager switches it on when ready)."""
    actor.require("manager")
    t = get(session, actor, trigger_id)
    if t.archived_at is not None:
        t.archived_at = None
        t.updated_at = db.utcnow()
        audit(session, actor, "trigger.restore", "trigger", t.id, {"kind": t.kind, "name": t.name})
    return t


def run_now(session: Session, actor: Actor, trigger_id: int) -> None:
    """Run a scheduled trigger now, out of its schedule (still once per occasion)."""
    actor.require("manager")
    t = get(session, actor, trigger_id)
    _not_archived(t)
    if t.kind not in SCHEDULED_KINDS:
        raise Explained("conflict", "a {kind} trigger reacts to events; it has no run", kind=t.kind)
    enqueue(session, t.merchant_id, "trigger.run", {"trigger_id": t.id, "manual": True}, priority=BULK)
    audit(session, actor, "trigger.run", "trigger", t.id)


# --- the schedule ----------------------------------------------------------------------


def schedule_due(now: dt.datetime | None = None, batch: int = DUE_BATCH, max_batches: int = 50) -> int:
    """Periodic job: queue the run of every scheduled trigger whose time has come, found
    through the index on next_run_at (not by reading every trigger); returns how many."""
    now = now or db.utcnow()
    queued = 0
    for _ in range(max_batches):
        with db.transaction() as session:
            pick = (
                select(Trigger, Merchant.timezone)
                .join(Merchant, Merchant.id == Trigger.merchant_id)
                .where(Trigger.next_run_at <= now)
                .order_by(Trigger.next_run_at, Trigger.id)
                .limit(batch)
            )
            if not db.is_sqlite():
                pick = pick.with_for_update(skip_locked=True, of=Trigger)
            rows = session.execute(pick).all()
            for t, tz in rows:
                queued += _schedule_one(session, t, tz, now)
        if len(rows) < batch:
            break
    return queued


def _schedule_one(session: Session, t: Trigger, tz: str, now: dt.datetime) -> int:
    """Queue the locked trigger's run if due; set when to look at it next."""
    if not t.enabled or t.archived_at is not None or t.kind not in SCHEDULED_KINDS:
        t.next_run_at = None
        return 0
    try:
        params = parse_params(t.kind, t.params)
    except DomainError:
        log.warning("trigger %s has invalid params; not scheduled until it is changed", t.id)
        t.next_run_at = None
        return 0
    zone = zoneinfo.ZoneInfo(tz)
    # The day this run is for: today, or the start day of a happy hour past midnight.
    day = run_day(t.kind, params, now.astimezone(zone))
    queued = 0
    if day is not None and (t.last_run_on is None or t.last_run_on < day):
        t.last_run_on = day
        enqueue(
            session, t.merchant_id, "trigger.run", {"trigger_id": t.id, "day": day.isoformat()}, priority=BULK
        )
        queued = 1
    at = next_run(t.kind, params, zone, now, t.last_run_on)
    if at is None:
        t.next_run_at = now + dt.timedelta(days=1)  # nothing this week: look again tomorrow
    elif at <= now:  # due but not run (cannot happen): look again in a minute
        t.next_run_at = now + dt.timedelta(minutes=1)
    else:
        t.next_run_at = at + dt.timedelta(seconds=jitter_seconds(t.merchant_id, JITTER_SECONDS))
    return queued


def _spec(t: Trigger, params: Any) -> tuple[Segment, bool]:
    """The trigger's segment, and whether marketing consent is required (by kind only)."""
    spec = params.segment or Segment()
    if t.program_id is not None:
        spec = spec.model_copy(update={"program_ids": [t.program_id]})
    return spec, t.kind in MARKETING_KINDS


def candidates(
    session: Session,
    t: Trigger,
    params: Any,
    merchant: Merchant,
    now: dt.datetime,
    day: dt.date | None = None,
) -> list[tuple[int, str, dict[str, Any]]]:
    """(card id, occasion, template values) of every guest the trigger is for today
    (`day`: the scheduled run's day, which a happy hour past midnight keeps)."""
    tz = merchant_tz(merchant)
    local_now = now.astimezone(tz)
    today = local_now.date()
    spec, consent = _spec(t, params)
    where = segments.conditions(merchant.id, spec, now, today, consent=consent, session=session)
    base = select(Card.id).join(Customer, Customer.id == Card.customer_id).where(*where)
    out: list[tuple[int, str, dict[str, Any]]] = []
    if t.kind == "birthday":
        ranges = birthday_ranges(today, params.days_before)
        birthdays = session.execute(
            select(Card.id, Customer.birth_md)
            .join(Customer, Customer.id == Card.customer_id)
            .where(*where, or_(*[Customer.birth_md.between(lo, hi) for lo, hi in ranges]))
        ).all()
        for card_id, md in birthdays:
            assert md is not None  # the query selects birthdays in the ranges only
            day = next_birthday(md, today)
            out.append((card_id, f"birthday:{day.year}", {"date": f"{day:%d.%m}"}))
    elif t.kind == "points_expiring":
        expiring = session.execute(
            select(LedgerEntry.card_id, func.sum(LedgerEntry.remaining), func.min(LedgerEntry.expires_at))
            .where(
                LedgerEntry.merchant_id == merchant.id,
                LedgerEntry.remaining > 0,
                LedgerEntry.expires_at > now,
                LedgerEntry.expires_at <= now + dt.timedelta(days=params.days_before),
                LedgerEntry.card_id.in_(base),
            )
            .group_by(LedgerEntry.card_id)
        ).all()
        for card_id, points, first in expiring:
            assert points is not None and first is not None  # sum() and min() of a non-empty group
            day = first.astimezone(tz).date()
            out.append(
                (card_id, f"expiring:{day.isoformat()}", {"points": int(points), "date": f"{day:%d.%m}"})
            )
    elif t.kind == "lapsed":
        lapsed = [Card.last_visit_at.is_not(None), Card.last_visit_at <= now - dt.timedelta(days=params.days)]
        if params.max_days is not None:
            lapsed.append(Card.last_visit_at >= now - dt.timedelta(days=params.max_days))
        lapsed_cards = session.execute(
            select(Card.id, Card.last_visit_at)
            .join(Customer, Customer.id == Card.customer_id)
            .where(*where, *lapsed)
        ).all()
        for card_id, last in lapsed_cards:
            assert last is not None  # the query selects cards with a last visit only
            days = (now - last).days
            out.append((card_id, f"lapsed:{last.astimezone(tz).date().isoformat()}", {"days": days}))
    elif t.kind in CANDIDATE_SOURCES:  # a kind another part lists (subscriptions ending)
        out += CANDIDATE_SOURCES[t.kind](session, base, merchant.id, params, now, tz)
    elif t.kind == "happy_hour":
        window = day or happy_hour_day(params, local_now) or today
        for card_id in session.scalars(base):
            out.append(
                (card_id, f"happy_hour:{window.isoformat()}", {"start": params.start, "end": params.end})
            )
    return out


def run(msg: Delivery) -> None:
    """trigger.run: list today's guests not yet served and queue them in chunks."""
    with db.read() as session:
        t = session.get(Trigger, msg.payload["trigger_id"])
        if t is None or not t.enabled or t.archived_at is not None:
            return
        params = parse_params(t.kind, t.params)
        merchant = get_merchant(session, t.merchant_id)
        now = db.utcnow()
        day = dt.date.fromisoformat(msg.payload["day"]) if msg.payload.get("day") else None
        items = candidates(session, t, params, merchant, now, day)
        done: set[tuple[int, str]] = set()
        ids = sorted({card_id for card_id, _, _ in items})
        for i in range(0, len(ids), 1000):
            done |= set(
                session.execute(
                    select(TriggerFiring.card_id, TriggerFiring.occasion).where(
                        TriggerFiring.trigger_id == t.id, TriggerFiring.card_id.in_(ids[i : i + 1000])
                    )
                ).all()
            )
    todo: list[list[Any]] = [
        [card_id, occasion, values] for card_id, occasion, values in items if (card_id, occasion) not in done
    ]
    todo.sort(key=lambda item: item[0])
    with db.transaction() as session:
        for i in range(0, len(todo), CHUNK):
            enqueue(
                session, t.merchant_id, "trigger.fire", {"trigger_id": t.id, "items": todo[i : i + CHUNK]}
            )


def _happy_hour_end(params: Any, merchant: Merchant, occasion: str) -> dt.datetime:
    """When the window of a `happy_hour:<day>` occasion closes (the next morning for a
    window past midnight)."""
    day = dt.date.fromisoformat(occasion.split(":", 1)[1])
    return happy_hour_bounds(params, day, merchant_tz(merchant))[1].astimezone(dt.UTC)


def _points(t: Trigger, params: Any, program: Program) -> int:
    if t.kind == "birthday" and params.points is None:
        rules = rules_of(program)
        return rules.birthday_points if isinstance(rules, BonusRules) else 0
    return params.points or 0


def fire_one(
    session: Session,
    t: Trigger,
    params: Any,
    card: Card,
    program: Program,
    occasion: str,
    values: dict[str, Any],
    *,
    offer: Offer | None,
    now: dt.datetime,
    cap: dt.datetime | None = None,
    changes: dict[str, list[int]] | None = None,
    in_google: set[int] | None = None,
    google_items: list[GoogleItem] | None = None,
) -> bool:
    """Message one locked card unless this trigger already did for this occasion.
    `changes`, `google_items`: see delivery.message_card (a chunk queues one card.changed
    and one batched google.message). `in_google`: the chunk's cards in Google Wallet
    (delivery.google_cards, read once for the chunk); None: looked up for this card."""
    if card.status != "active":
        return False
    if t.program_id is not None and card.program_id != t.program_id:
        return False
    seen = session.scalar(
        select(TriggerFiring.id).where(
            TriggerFiring.trigger_id == t.id,
            TriggerFiring.card_id == card.id,
            TriggerFiring.occasion == occasion,
        )
    )
    if seen is not None:
        return False
    points = _points(t, params, program)
    values = {"points": points, **values, "tier": card.tier or "", "offer": offer.name if offer else ""}
    # {points_text}: the count with its word in the café's language ("21 балл", "22 балла").
    merchant = session.get(Merchant, card.merchant_id)
    lang = merchant.locale if merchant is not None and merchant.locale in LANGUAGES else DEFAULT_LANGUAGE
    values["points_text"] = plural(lang, "%(num)s point", "%(num)s points", int(values["points"] or 0))
    if "days" in values:  # the lapsed guest's days away: "21 день", "30 дней"
        values["days_text"] = plural(lang, "%(num)s day", "%(num)s days", int(values["days"]))
    try:
        sent = message_card(
            session,
            card,
            program,
            header=render(params.message.header, values)[:100],
            body=render(params.message.body, values),
            message_id=f"trigger-{t.id}-{card.id}-{occasion}"[:120],
            source="trigger",
            source_id=t.id,
            points=points,
            offer=offer,
            coupon_cap=cap,
            reason=f"trigger:{t.kind}",
            ledger_kind="birthday" if t.kind == "birthday" else "campaign",
            google=card.id in in_google if in_google is not None else bool(google_cards(session, [card.id])),
            now=now,
            changes=changes,
            google_items=google_items,
        )
    except DomainError as exc:  # the offer ran out or ended
        log.warning("trigger %s: card %s skipped: %s", t.id, card.id, exc.detail)
        return False
    session.add(
        TriggerFiring(
            merchant_id=t.merchant_id,
            trigger_id=t.id,
            card_id=card.id,
            occasion=occasion,
            points=sent.points,
            coupon_id=sent.coupon.id if sent.coupon else None,
            created_at=now,
        )
    )
    session.flush()
    return True


def fire(msg: Delivery) -> None:
    """trigger.fire: one chunk of (card, occasion), one transaction."""
    with db.transaction() as session:
        t = session.get(Trigger, msg.payload["trigger_id"])
        if t is None or not t.enabled or t.archived_at is not None:
            return
        params = parse_params(t.kind, t.params)
        offer = session.get(Offer, params.offer_id) if params.offer_id else None
        now = db.utcnow()
        merchant = get_merchant(session, t.merchant_id) if t.kind == "happy_hour" else None
        changes: dict[str, list[int]] = {}  # the chunk's cards: one card.changed per touch reason
        google_items: list[GoogleItem] = []  # the chunk's Google messages: one google.message row
        items = sorted(msg.payload["items"], key=lambda item: item[0])
        in_google = google_cards(session, [int(item[0]) for item in items])
        for card_id, occasion, values in items:
            try:
                card, program = lock_card_by_id(session, card_id)
            except DomainError:
                continue
            cap = _happy_hour_end(params, merchant, occasion) if merchant is not None else None
            fire_one(
                session,
                t,
                params,
                card,
                program,
                occasion,
                values,
                offer=offer,
                now=now,
                cap=cap,
                changes=changes,
                in_google=in_google,
                google_items=google_items,
            )
        for reason, card_ids in changes.items():
            cards_changed(session, t.merchant_id, card_ids, reason)
        queue_google_messages(session, t.merchant_id, google_items, f"trigger-{t.id}")


# --- event triggers --------------------------------------------------------------------


def _matches(
    session: Session, merchant: Merchant, card: Card, spec: Segment, consent: bool, now: dt.datetime
) -> bool:
    from loyalwallet.merchants.service import today

    where = segments.conditions(
        merchant.id, spec, now, today(merchant, now), consent=consent, session=session
    )
    return (
        session.scalar(
            select(Card.id)
            .join(Customer, Customer.id == Card.customer_id)
            .where(and_(*where), Card.id == card.id)
        )
        is not None
    )


def on_event(msg: Delivery) -> None:
    """EVENT_LISTENERS entry: welcome on card.created, congratulations on a higher tier."""
    name = msg.payload.get("name")
    data = msg.payload.get("data") or {}
    if name == "card.created":
        kind, code = "welcome", data.get("code")
    elif name == "card.tier_changed":
        kind, code = "tier_up", data.get("card")
    else:
        return
    if msg.merchant_id is None or not code:
        return
    with db.read() as session:
        found = session.scalars(
            select(Trigger).where(
                Trigger.merchant_id == msg.merchant_id,
                Trigger.kind == kind,
                Trigger.enabled.is_(True),
                Trigger.archived_at.is_(None),
            )
        ).all()
    # A trigger answers what happens after it was made, not a backlog of older events
    # still in the outbox (a worker that was down, the demo's seeded history).
    at = msg.payload.get("at")
    if at:
        happened = dt.datetime.fromisoformat(at)
        found = [t for t in found if t.created_at <= happened]
    if not found:
        return
    with db.transaction() as session:
        try:
            card, program = lock_card(session, msg.merchant_id, code)
        except DomainError:
            return
        merchant = get_merchant(session, msg.merchant_id)
        now = db.utcnow()
        for t in found:
            params = parse_params(t.kind, t.params)
            occasion = "welcome"
            if kind == "tier_up":
                rules = rules_of(program)
                if not isinstance(rules, BonusRules | DiscountRules):
                    continue
                names = [tier.name for tier in rules.tiers]
                to = data.get("to")
                if tier_rank(names, to) <= tier_rank(names, data.get("from")):
                    continue  # a step down is no occasion to congratulate
                if params.tiers and to not in params.tiers:
                    continue
                occasion = f"tier:{to}"
            spec, consent = _spec(t, params)
            if not _matches(session, merchant, card, spec, consent, now):
                continue
            offer = session.get(Offer, params.offer_id) if params.offer_id else None
            fire_one(
                session,
                t,
                params,
                card,
                program,
                occasion,
                {"tier": data.get("to") or ""},
                offer=offer,
                now=now,
            )
