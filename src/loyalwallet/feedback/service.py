"""Visit feedback: the merchant's settings, the invitation after a purchase, the guest's
answer (one per purchase, editable for 24 h) and the owner's alert about a low score.

The guest is known by the card's link token (the web card's bearer link) and the
purchase id; a purchase of another card is "not found", whatever the token.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalwallet import db
from loyalwallet.campaigns.rules import parse
from loyalwallet.cards.book import CardBook, lock_card_by_id
from loyalwallet.cards.models import Card
from loyalwallet.checkout.models import Purchase
from loyalwallet.enrollment.limits import check_limit, count_hit, ip_hash
from loyalwallet.enrollment.links import base_url
from loyalwallet.errors import DomainError, Explained, not_found
from loyalwallet.feedback import rules
from loyalwallet.feedback.models import Feedback
from loyalwallet.fraud.service import send_telegram
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.models import Location, Merchant, Staff
from loyalwallet.merchants.service import audit, get_merchant, merchant_tz
from loyalwallet.programs.models import Program
from loyalwallet.text import gettext_for

log = logging.getLogger("loyalwallet.feedback")


# --- settings ------------------------------------------------------------------------------


def settings_of(merchant: Merchant) -> rules.FeedbackSettings:
    raw = (merchant.settings or {}).get("feedback") or {}
    try:
        return rules.FeedbackSettings.model_validate(raw)
    except Exception:  # stored by an older version: defaults (feedback off), loudly
        log.warning("merchant %s has invalid feedback settings; using defaults", merchant.id)
        return rules.FeedbackSettings()


def set_settings(session: Session, actor: Actor, raw: dict[str, Any]) -> rules.FeedbackSettings:
    actor.require("owner")
    merchant = get_merchant(session, actor.merchant_id)
    merged = {**settings_of(merchant).model_dump(mode="json"), **raw}
    parsed: rules.FeedbackSettings = parse(rules.FeedbackSettings, merged, "feedback")
    own = {str(i) for i in session.scalars(select(Location.id).where(Location.merchant_id == merchant.id))}
    for key in parsed.review_links:
        if key not in own:
            raise Explained(
                "validation_error",
                "feedback.review_links: no location {key}",
                key=key,
                extra={"field": "review_links"},
            )
    merchant.settings = {**(merchant.settings or {}), "feedback": parsed.model_dump(mode="json")}
    audit(session, actor, "feedback.settings", "merchant", merchant.id, raw)
    return parsed


# --- links -------------------------------------------------------------------------------


def rate_path(card: Card, purchase_id: int) -> str:
    return f"/c/{card.public_token}/rate/{purchase_id}"


def rate_url(card: Card, purchase_id: int) -> str:
    return base_url().rstrip("/") + rate_path(card, purchase_id)


def pending_rate_path(session: Session, card: Card, merchant: Merchant, now: dt.datetime) -> str | None:
    """The web card's "Rate your visit" button: the card's latest purchase, if feedback is
    on, it is recent enough and not answered yet."""
    if card.customer_id is None or not settings_of(merchant).enabled:
        return None
    row = session.execute(
        select(Purchase.id, Purchase.created_at)
        .where(Purchase.card_id == card.id, Purchase.status != "refunded")
        .order_by(Purchase.created_at.desc(), Purchase.id.desc())
        .limit(1)
    ).first()
    if row is None or not rules.answer_open(row[1], None, now):
        return None
    if session.scalar(select(Feedback.id).where(Feedback.purchase_id == row[0])) is not None:
        return None
    return rate_path(card, row[0])


# --- the guest's page ----------------------------------------------------------------------


@dataclass
class Visit:
    card: Card
    program: Program
    merchant: Merchant
    purchase: Purchase
    feedback: Feedback | None
    location: Location | None

    def is_open(self, now: dt.datetime) -> bool:
        answered = self.feedback.created_at if self.feedback is not None else None
        return rules.answer_open(self.purchase.created_at, answered, now)

    def review_links(self, merchant_settings: rules.FeedbackSettings) -> list[dict[str, str]]:
        if self.location is None:
            return []
        links = merchant_settings.review_links.get(str(self.location.id))
        return links.listed() if links is not None else []


def load_visit(session: Session, token: str, purchase_id: int) -> Visit:
    """The purchase of the card behind this link token; not_found for a forged link, a
    purchase of another card, or a merchant that has feedback switched off."""
    if not token or len(token) > 64 or purchase_id <= 0:
        raise not_found("feedback link")
    row = session.execute(
        select(Card, Program, Merchant, Purchase)
        .join(Program, Program.id == Card.program_id)
        .join(Merchant, Merchant.id == Card.merchant_id)
        .join(Purchase, Purchase.card_id == Card.id)
        .where(Card.public_token == token, Purchase.id == purchase_id)
    ).first()
    if row is None or not settings_of(row[2]).enabled:
        raise not_found("feedback link")
    card, program, merchant, purchase = row[0], row[1], row[2], row[3]
    feedback = session.scalar(select(Feedback).where(Feedback.purchase_id == purchase.id))
    location = session.get(Location, purchase.location_id) if purchase.location_id else None
    return Visit(card, program, merchant, purchase, feedback, location)


def answer(
    session: Session,
    token: str,
    purchase_id: int,
    *,
    score: Any,
    problems: list[Any],
    comment: Any,
    ip: str | None,
    now: dt.datetime | None = None,
) -> tuple[Visit, Feedback]:
    """Record (or, within 24 h of the first answer, change) the rating of a visit.
    Raises DomainError (not_found, feedback_closed, validation_error, rate_limited)
    before writing anything."""
    now = now or db.utcnow()
    visit = load_visit(session, token, purchase_id)
    if visit.card.status != "active":
        raise DomainError("card_blocked")
    if not visit.is_open(now):
        raise DomainError("feedback_closed")
    try:
        parsed = rules.parse_answer(score, problems, comment)
    except ValueError as exc:
        field = str(exc).split(":")[0]
        raise DomainError("validation_error", str(exc), field=field) from None
    hashed = ip_hash(ip)
    if hashed:
        check_limit(session, "feedback_ip", hashed, now)
    check_limit(session, "feedback_card", str(visit.card.id), now)
    # The card row lock orders concurrent answers to the same purchase (the unique
    # purchase_id is the last guard).
    lock_card_by_id(session, visit.card.id)
    existing = session.scalar(select(Feedback).where(Feedback.purchase_id == purchase_id))
    was_low = existing is not None and rules.is_low(existing.score)
    if existing is None:
        purchase = visit.purchase
        staff_id = _cashier(session, purchase)
        feedback = Feedback(
            merchant_id=visit.merchant.id,
            purchase_id=purchase.id,
            card_id=visit.card.id,
            location_id=purchase.location_id,
            staff_id=staff_id,
            score=parsed.score,
            problems=parsed.problems,
            comment=parsed.comment,
            edits=0,
            created_at=now,
        )
        session.add(feedback)
        _reward(session, visit, now)
    else:
        feedback = existing
        feedback.score = parsed.score
        feedback.problems = parsed.problems
        feedback.comment = parsed.comment
        feedback.edits = (existing.edits or 0) + 1
        feedback.updated_at = now
    if hashed:
        count_hit(session, "feedback_ip", hashed, now)
    count_hit(session, "feedback_card", str(visit.card.id), now)
    session.flush()
    if rules.is_low(parsed.score) and not was_low:
        send_telegram(session, visit.merchant, alert_text(session, visit, feedback), what="alerts")
    visit.feedback = feedback
    return visit, feedback


def _cashier(session: Session, purchase: Purchase) -> int | None:
    """The staff member who rang the purchase up (None for a till's API key)."""
    if purchase.actor_type != "staff" or purchase.actor_id is None:
        return None
    staff = session.get(Staff, purchase.actor_id)
    return staff.id if staff is not None and staff.merchant_id == purchase.merchant_id else None


def _reward(session: Session, visit: Visit, now: dt.datetime) -> None:
    """Points for answering at all (the same for every score), when the owner wants it."""
    points = settings_of(visit.merchant).reward_points
    if points <= 0 or visit.program.kind != "bonus":
        return
    card, program = lock_card_by_id(session, visit.card.id)
    book = CardBook(session, card, program, now)
    book.credit("campaign", points, reason=f"feedback on purchase {visit.purchase.id}")
    book.touch("feedback")


def alert_text(session: Session, visit: Visit, feedback: Feedback) -> str:
    """The owner's Telegram message (HTML; everything the guest typed is escaped)."""
    _ = gettext_for(visit.merchant.locale or "ru")
    tz = merchant_tz(visit.merchant)
    cashier = session.get(Staff, feedback.staff_id) if feedback.staff_id else None
    stars = "★" * feedback.score + "☆" * (5 - feedback.score)
    lines = [
        f"<b>{html.escape(_('Low visit rating'))}: {stars} ({feedback.score}/5)</b>",
        f"{html.escape(_('Location'))}: {html.escape(visit.location.name if visit.location else '—')}",
        f"{html.escape(_('Cashier'))}: {html.escape(cashier.name or cashier.login if cashier else '—')}",
        f"{html.escape(_('Purchase'))}: #{visit.purchase.id}, "
        f"{visit.purchase.created_at.astimezone(tz).strftime('%d.%m.%Y %H:%M')}, "
        f"{html.escape(_('card'))} {html.escape(visit.card.code)}",
    ]
    if feedback.problems:
        labels = ", ".join(_(rules.PROBLEMS[p]) for p in feedback.problems if p in rules.PROBLEMS)
        lines.append(f"{html.escape(_('What was wrong'))}: {html.escape(labels)}")
    if feedback.comment:
        lines.append(f"{html.escape(_('Comment'))}: {html.escape(feedback.comment[:1500])}")
    return "\n".join(lines)
