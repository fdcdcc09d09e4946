"""Invitation cards: anonymous cards installed straight from a counter QR, made the
guest's own by the form later, or merged into the card the guest already had.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from loyalwallet import db
from loyalwallet.analytics import activity as guest_activity
from loyalwallet.analytics import rollup
from loyalwallet.cards.book import CardBook
from loyalwallet.cards.models import Card, Coupon
from loyalwallet.customers.models import Customer
from loyalwallet.enrollment import rules
from loyalwallet.enrollment.limits import check_limit, count_hit, device_hash, ip_hash
from loyalwallet.enrollment.links import guest_actor, public_program
from loyalwallet.enrollment.models import Channel, Join
from loyalwallet.errors import not_found
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.service import audit
from loyalwallet.outbox.service import emit_event
from loyalwallet.programs.models import Program
from loyalwallet.programs.rules import BonusRules, StampRules
from loyalwallet.text import gettext_for


def create_invitation(
    session: Session,
    channel: Channel,
    ip: str | None,
    device_id: str | None,
    user_agent: str | None,
    now: dt.datetime | None = None,
) -> Card:
    """An anonymous card installed straight from a counter QR. It works at once (and
    takes pushes); the form, filled later, makes it the guest's named card."""
    from loyalwallet.cards.service import new_card

    now = now or db.utcnow()
    if channel.status != "active" or not channel.invitation:
        raise not_found("invitation")
    program, _merchant = public_program(session, channel.program_id)
    ipx = ip_hash(ip)
    if ipx:
        check_limit(session, "invite_ip", ipx, now)
        count_hit(session, "invite_ip", ipx, now)
    card = new_card(session, program, None, channel.slug)
    session.add(
        Join(
            merchant_id=program.merchant_id,
            program_id=program.id,
            card_id=card.id,
            kind="invitation",
            created=True,
            channel_id=channel.id,
            channel=channel.slug,
            utm_source=channel.utm_source,
            utm_medium=channel.utm_medium,
            utm_campaign=channel.utm_campaign,
            platform=rules.platform(user_agent),
            ip_hash=ipx,
            device_hash=device_hash(device_id),
            created_at=now,
        )
    )
    audit(
        session,
        guest_actor(program.merchant_id),
        "card.invitation",
        "card",
        card.code,
        {"channel": channel.slug},
    )
    return card


def usable_invitation(session: Session, program: Program, public_token: str | None) -> Card | None:
    if not public_token:
        return None
    card = session.scalar(
        db.for_update(
            select(Card).where(
                Card.public_token == public_token,
                Card.program_id == program.id,
                Card.customer_id.is_(None),
                Card.status == "active",
            )
        )
    )
    return card


def claim_invitation(
    session: Session,
    actor: Actor,
    program: Program,
    card: Card,
    customer: Customer,
    referrer: Card | None,
    now: dt.datetime,
) -> Card:
    """The anonymous card becomes the guest's: their name on it, the welcome gift."""
    card.customer_id = customer.id
    if referrer is not None:
        card.referrer_card_id = referrer.id
    book = CardBook(session, card, program, now)
    rules_ = book.rules
    if isinstance(rules_, BonusRules) and rules_.welcome_points:
        book.credit("welcome", rules_.welcome_points, actor=actor, reason="welcome gift")
    if isinstance(rules_, StampRules) and rules_.welcome_stamps:
        book.add_stamps("welcome", rules_.welcome_stamps, reason="welcome gift")
    book.touch("claimed")
    audit(session, actor, "card.claim", "card", card.code, {"program_id": program.id})
    emit_event(session, program.merchant_id, "card.created", {"code": card.code, "program_id": program.id})
    return card


def merge_invitation(
    session: Session, program: Program, source: Card, target: Card, now: dt.datetime, lang: str = "ru"
) -> None:
    """The guest already had a card: keep it (its history, its place in the wallet and at
    the till) and move what the invitation card collected onto it. The invitation card
    is blocked with a message pointing to the kept card."""
    from loyalwallet.cards.book import lock_card_by_id

    # Lock in id order: two merges never wait on each other crosswise.
    for card_id in sorted((source.id, target.id)):
        lock_card_by_id(session, card_id)
    src = CardBook(session, source, program, now)
    dst = CardBook(session, target, program, now)
    src.expire_due()
    dst.expire_due()
    points = source.balance
    if points > 0:
        src.take_back("adjustment", points, allow_debt=False, reason=f"moved to card {target.code}")
        dst.credit("adjustment", points, reason=f"moved from invitation card {source.code}")
    elif points < 0:
        src.credit("adjustment", -points, ttl_days=None, reason=f"debt moved to card {target.code}")
        dst.take_back("adjustment", -points, allow_debt=True, reason=f"debt moved from card {source.code}")
    stamps = source.stamps
    if stamps:
        src.add_stamps("adjustment", -stamps, reason=f"moved to card {target.code}")
        dst.add_stamps("adjustment", stamps, reason=f"moved from invitation card {source.code}")
    session.execute(
        update(Coupon)
        .where(Coupon.card_id == source.id, Coupon.status == "available")
        .values(card_id=target.id)
    )
    target.spend += source.spend
    target.visits += source.visits
    source.spend = 0
    source.visits = 0
    if source.first_purchase_at and (
        not target.first_purchase_at or source.first_purchase_at < target.first_purchase_at
    ):
        target.first_purchase_at = source.first_purchase_at
    if source.last_visit_at and (not target.last_visit_at or source.last_visit_at > target.last_visit_at):
        target.last_visit_at = source.last_visit_at
    # Its purchases are the kept card's from now on (one guest): in the cached figures
    # and in the dashboard's purchase days.
    source.first_purchase_at = None
    source.last_visit_at = None
    guest_activity.merge_cards(session, source.id, target.id)
    rollup.merge_cards(session, source.id, target.id)  # the retention table's card months
    dst.retier()
    source.status = "blocked"
    source.message = gettext_for(lang)("This card was joined to your card %(code)s: please use that one.") % {
        "code": target.code
    }
    source.message_at = now
    src.touch("merged")
    dst.touch("merged")
    audit(
        session,
        guest_actor(program.merchant_id),
        "card.merge",
        "card",
        target.code,
        {"from": source.code, "points": points, "stamps": stamps},
    )


def merged_into(session: Session, card: Card) -> Card | None:
    """The card an invitation card was merged into, if it was."""
    target_id = session.scalar(
        select(Join.card_id).where(Join.invitation_card_id == card.id, Join.card_id != card.id).limit(1)
    )
    return session.get(Card, target_id) if target_id else None
