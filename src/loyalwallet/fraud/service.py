"""Anti-fraud checks inside the checkout, the alert list, Telegram alerts and the daily
digest.

`check_purchase` / `check_refund` run in the checkout's transaction, after the card is
locked and before anything is written. A blocking rule raises DomainError("fraud_limit")
so the whole transaction rolls back; the alert about the refused attempt is written
just after that rollback, in its own transaction (a Session "after_rollback" hook), so
the owner still hears of it. Alert-only rules write their alert in the checkout's own
transaction: it commits with the purchase or not at all.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import logging
import threading
import time
import zoneinfo
from typing import Any

from cachetools import LRUCache
from sqlalchemy import Select, bindparam, event, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loyalwallet import crypto, db
from loyalwallet.caches import size
from loyalwallet.cards.book import HOURLY_HINT
from loyalwallet.cards.models import Card, LedgerEntry
from loyalwallet.checkout.models import Purchase, Refund
from loyalwallet.config import env
from loyalwallet.customers.models import Customer
from loyalwallet.errors import DomainError, not_found
from loyalwallet.fraud import rules as fr
from loyalwallet.fraud import telegram
from loyalwallet.fraud.models import Alert, Digest
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.models import Merchant
from loyalwallet.merchants.service import audit, get_merchant, merchant_tz
from loyalwallet.outbox.handlers import Delivery, Permanent, Retry
from loyalwallet.outbox.service import enqueue
from loyalwallet.text import gettext_for, money, translate

log = logging.getLogger("loyalwallet.fraud")

TELEGRAM_TOPIC = "telegram.send"
DEDUP = fr.DEDUP  # the same rule for the same card/cashier: one alert
_BLOCKED_KEY = "fraud_blocked"


# --- settings --------------------------------------------------------------------------


def rules_of(merchant: Merchant) -> fr.FraudRules:
    raw = (merchant.settings or {}).get("fraud") or {}
    try:
        return fr.FraudRules.model_validate(raw)
    except Exception:  # stored by an older version: fall back to defaults, loudly
        log.warning("merchant %s has invalid fraud settings; using defaults", merchant.id)
        return fr.FraudRules()


def _cache_seconds() -> float:
    return float(env("FRAUD_RULES_CACHE_SECONDS", "5") or 5)


class _RulesCache:
    """A merchant's rules and time zone for a few seconds: the checkout asks on every
    purchase. A change clears it in this process when it commits (and a read that raced
    the change is not kept); other processes see it within LOYALWALLET_FRAUD_RULES_CACHE_SECONDS."""

    def __init__(self) -> None:
        # Least recently used first out when full (LOYALWALLET_CACHE_FRAUD_RULES).
        self._items: LRUCache[int, tuple[float, fr.FraudRules, str]] = LRUCache(size("FRAUD_RULES", 10000))
        self._lock = threading.Lock()
        self._generation = 0  # bumped by clear(): a read begun before it is not stored

    def get(self, session: Session, merchant_id: int) -> tuple[fr.FraudRules, str]:
        with self._lock:
            item = self._items.get(merchant_id)
        if item is not None and item[0] > time.monotonic():
            return item[1], item[2]
        generation = self._generation
        merchant = get_merchant(session, merchant_id)
        rules, tz = rules_of(merchant), merchant.timezone
        ttl = _cache_seconds()
        with self._lock:
            if ttl > 0 and generation == self._generation:
                self._items[merchant_id] = (time.monotonic() + ttl, rules, tz)
        return rules, tz

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._generation += 1


_cache = _RulesCache()


def cached_rules(merchant_id: int) -> fr.FraudRules | None:
    """The merchant's rules if this process holds them now (checkout.fast reads no
    database for them; None sends it to the general path, which fills the cache)."""
    item = _cache._items.get(merchant_id)
    return item[1] if item is not None and item[0] > time.monotonic() else None


_RULES_CHANGED = "fraud_rules_changed"


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    # Cleared again once the new rules are visible: a purchase that read the old rules
    # between set_rules and the commit must not keep them for another TTL.
    if session.info.pop(_RULES_CHANGED, None):
        _cache.clear()


def set_rules(session: Session, actor: Actor, raw: dict[str, Any]) -> fr.FraudRules:
    from loyalwallet.campaigns.rules import parse

    actor.require("owner")
    merchant = get_merchant(session, actor.merchant_id)
    current = rules_of(merchant).model_dump(mode="json")
    merged = {**current, **raw}
    parsed: fr.FraudRules = parse(fr.FraudRules, merged, "rules")
    merchant.settings = {**(merchant.settings or {}), "fraud": parsed.model_dump(mode="json")}
    audit(session, actor, "fraud.rules", "merchant", merchant.id, raw)
    _cache.clear()
    session.info[_RULES_CHANGED] = True
    return parsed


def telegram_settings(merchant: Merchant) -> dict[str, Any]:
    return dict((merchant.settings or {}).get("telegram") or {})


def bot_token(merchant: Merchant) -> str | None:
    """The merchant's own bot token, else the installation's (LOYALWALLET_TELEGRAM_BOT_TOKEN)."""
    sealed = telegram_settings(merchant).get("token_enc")
    if sealed:
        return crypto.open_(base64.b64decode(sealed), merchant_id=merchant.id, column="telegram_token")
    return env("TELEGRAM_BOT_TOKEN")


def telegram_view(merchant: Merchant) -> dict[str, Any]:
    t = telegram_settings(merchant)
    return {
        "chat_id": t.get("chat_id"),
        "has_own_token": bool(t.get("token_enc")),
        "has_token": bot_token(merchant) is not None,
        "alerts": t.get("alerts", True),
        "digest": t.get("digest", True),
        "digest_hour": t.get("digest_hour", 9),
    }


def set_telegram(session: Session, actor: Actor, changes: dict[str, Any]) -> Merchant:
    actor.require("owner")
    merchant = get_merchant(session, actor.merchant_id)
    t = telegram_settings(merchant)
    if "bot_token" in changes:
        token = changes.pop("bot_token")
        if token:
            sealed = crypto.seal(token, merchant_id=merchant.id, column="telegram_token")
            assert sealed is not None
            t["token_enc"] = base64.b64encode(sealed).decode()
        else:
            t.pop("token_enc", None)
    for key in ("chat_id", "alerts", "digest", "digest_hour"):
        if key in changes:
            t[key] = changes[key]
    merchant.settings = {**(merchant.settings or {}), "telegram": t}
    audit(session, actor, "telegram.settings", "merchant", merchant.id, {k: v for k, v in changes.items()})
    return merchant


def _telegram_ready(merchant: Merchant, what: str) -> bool:
    t = telegram_settings(merchant)
    return bool(t.get("chat_id")) and t.get(what, True) and bot_token(merchant) is not None


def send_telegram(session: Session, merchant: Merchant, text: str, *, what: str = "alerts") -> bool:
    """Queue a message to the owner's chat (in this transaction) if Telegram is set up."""
    if not _telegram_ready(merchant, what):
        return False
    enqueue(session, merchant.id, TELEGRAM_TOPIC, {"text": text})
    return True


def deliver_telegram(msg: Delivery) -> None:
    """telegram.send handler: the chat and token are read now, never kept in the row."""
    with db.read() as session:
        merchant = session.get(Merchant, msg.merchant_id)
        if merchant is None:
            return
        chat_id = telegram_settings(merchant).get("chat_id")
        token = bot_token(merchant)
    if not chat_id or not token:
        return  # switched off since: the alert list still has it
    try:
        telegram.send_message(token, str(chat_id), msg.payload["text"])
    except telegram.TelegramError as exc:
        if exc.permanent:
            raise Permanent(str(exc)) from exc
        raise Retry(str(exc), after=exc.retry_after) from exc


# --- checks in the checkout ------------------------------------------------------------


def _local_midnight(merchant: Merchant | str, now: dt.datetime) -> dt.datetime:
    tz = merchant_tz(merchant) if isinstance(merchant, Merchant) else zoneinfo.ZoneInfo(merchant)
    local = now.astimezone(tz)
    return dt.datetime.combine(local.date(), dt.time(0), tzinfo=tz).astimezone(dt.UTC)


# The checkout's queries, built once: building an ORM select per call costs more than
# running it.
_PURCHASES = Purchase.__table__
_LEDGER = LedgerEntry.__table__
_PURCHASES_SINCE = select(func.count()).where(
    _PURCHASES.c.card_id == bindparam("card_id"), _PURCHASES.c.created_at >= bindparam("since")
)
_POINTS_SINCE = select(func.coalesce(func.sum(_LEDGER.c.points), 0)).where(
    _LEDGER.c.card_id == bindparam("card_id"),
    _LEDGER.c.kind == bindparam("kind"),
    _LEDGER.c.created_at >= bindparam("since"),
)


def _ops_by_staff(table: Any) -> Any:
    return (
        select(func.count())
        .where(
            table.c.merchant_id == bindparam("merchant_id"),
            table.c.created_at >= bindparam("since"),
            table.c.created_at <= bindparam("now"),
            table.c.actor_type == "staff",
            table.c.actor_id == bindparam("actor_id"),
        )
        .scalar_subquery()
    )


# Purchases plus refunds, in one round trip.
_STAFF_OPS = select(_ops_by_staff(_PURCHASES) + _ops_by_staff(Refund.__table__))


def _staff_ops(session: Session, actor: Actor, rules: fr.FraudRules, now: dt.datetime) -> int | None:
    """Purchases and refunds by this staff member in the burst window up to `now` (None:
    not staff). The upper bound matters when the clock is set back (the demo's history)."""
    if actor.kind != "staff" or not fr.needs(rules, "cashier_burst"):
        return None
    since = now - dt.timedelta(minutes=rules.cashier_burst.minutes)
    params = {"merchant_id": actor.merchant_id, "since": since, "now": now, "actor_id": actor.id}
    return int(session.scalar(_STAFF_OPS, params) or 0)


def _points_today(session: Session, card: Card, kind: str, since: dt.datetime) -> int:
    total = session.scalar(_POINTS_SINCE, {"card_id": card.id, "kind": kind, "since": since})
    return abs(int(total or 0))


def check_purchase(
    session: Session,
    actor: Actor,
    card: Card,
    *,
    points_accrued: int,
    points_redeemed: int,
    amount: int,
    now: dt.datetime,
) -> None:
    """On the hot path: with the default rules this costs no query (rules cached; the
    hourly count comes with the card's lock; an alert that keeps firing is one UPDATE)."""
    rules, tz = _cache.get(session, actor.merchant_id)
    own = False
    if fr.needs(rules, "own_card") and actor.phone_index is not None and card.customer_id is not None:
        # Loaded with the card (lock_card): no round trip.
        customer = session.get(Customer, card.customer_id)
        own = customer is not None and customer.phone_index == actor.phone_index
    hour_ago = now - dt.timedelta(hours=1)
    recent_visit = card.last_visit_at is not None and card.last_visit_at >= hour_ago
    accrued_today = redeemed_today = hourly = 0
    if points_accrued and fr.needs(rules, "max_accrual_per_day"):
        accrued_today = _points_today(session, card, "accrual", _local_midnight(tz, now))
    if points_redeemed and fr.needs(rules, "max_redemption_per_day"):
        redeemed_today = _points_today(session, card, "redemption", _local_midnight(tz, now))
    if recent_visit and fr.needs(rules, "max_purchases_per_hour"):
        # Counted with the card's lock (cards.book.lock_card_for_purchase) when it could be.
        hint = session.info.get(HOURLY_HINT, {}).get(card.id)
        if hint is not None and hint[0] == now:
            hourly = hint[1]
        else:
            hourly = int(session.scalar(_PURCHASES_SINCE, {"card_id": card.id, "since": hour_ago}) or 0)
    facts = fr.PurchaseFacts(
        points_accrued=points_accrued,
        points_redeemed=points_redeemed,
        accrued_today=accrued_today,
        redeemed_today=redeemed_today,
        purchases_last_hour=hourly,
        own_card=own,
        staff_ops_recent=_staff_ops(session, actor, rules, now),
    )
    hits = fr.check_purchase(rules, facts)
    if hits:
        _act(session, actor.merchant_id, actor, hits, "purchase", card, amount, now)


def check_refund(
    session: Session, actor: Actor, card: Card, purchase: Purchase, *, amount: int, now: dt.datetime
) -> None:
    rules, _tz = _cache.get(session, actor.merchant_id)
    facts = fr.RefundFacts(
        days_since_purchase=(now - purchase.created_at).total_seconds() / 86400,
        by_manager=actor.at_least("manager"),
        staff_ops_recent=_staff_ops(session, actor, rules, now),
    )
    hits = fr.check_refund(rules, facts)
    if hits:
        _act(session, actor.merchant_id, actor, hits, "refund", card, amount, now, purchase.id)


def _act(
    session: Session,
    merchant_id: int,
    actor: Actor,
    hits: list[fr.Hit],
    operation: str,
    card: Card,
    amount: int,
    now: dt.datetime,
    purchase_id: int | None = None,
) -> None:
    if not hits:
        return
    context = fr.alert_context(operation, card.id, card.code, actor, amount, purchase_id)
    blocks = fr.blocking(hits)
    if blocks:
        # Written after the rollback (see _after_rollback): the attempt left no trace.
        session.info.setdefault(_BLOCKED_KEY, []).extend((merchant_id, h, context, now) for h in blocks)
        first = blocks[0]
        raise DomainError("fraud_limit", first.message, rule=first.rule)
    for hit in hits:
        record_alert(session, merchant_id, hit, "alerted", context, now)


_ALERTS = Alert.__table__
# One more count on the alert that fired lately for the same rule, card and cashier: one
# statement (no read of the alert or of the merchant), so an alert-only rule that keeps
# firing on the hot path costs a single UPDATE.
_COUNT_AGAIN = (
    update(_ALERTS)
    .where(
        _ALERTS.c.id
        == select(_ALERTS.c.id)
        .where(
            _ALERTS.c.merchant_id == bindparam("m_id"),
            _ALERTS.c.dedup_key == bindparam("key"),
            _ALERTS.c.last_seen_at >= bindparam("since"),
        )
        .order_by(_ALERTS.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    .values(count=_ALERTS.c.count + 1, last_seen_at=bindparam("now"))
)


def record_alert(
    session: Session, merchant_id: int, hit: fr.Hit, action: str, context: dict[str, Any], now: dt.datetime
) -> Alert | None:
    """An alert, or one more count on the same one if it fired lately (no Telegram
    flood). Returns the new alert, or None when an existing one was counted."""
    fields = fr.alert_fields(merchant_id, hit, action, context, now)
    params = {"m_id": merchant_id, "key": fields["dedup_key"], "since": now - DEDUP, "now": now}
    if session.execute(_COUNT_AGAIN, params).rowcount:  # type: ignore[attr-defined]
        return None
    merchant = get_merchant(session, merchant_id)
    alert = Alert(**fields)
    session.add(alert)
    session.flush()
    send_telegram(session, merchant, alert_text(merchant, alert))
    return alert


def telegram_alert(merchant: Merchant, alert: Alert) -> str | None:
    """The Telegram message record_alert queues for a new alert, or None when the
    merchant's Telegram is not set up for alerts (checkout.fast writes it itself)."""
    return alert_text(merchant, alert) if _telegram_ready(merchant, "alerts") else None


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_RULES_CHANGED, None)
    blocked = session.info.pop(_BLOCKED_KEY, None)
    if not blocked:
        return
    try:
        with db.transaction() as other:
            for merchant_id, hit, context, now in blocked:
                if other.get(Merchant, merchant_id) is not None:
                    record_alert(other, merchant_id, hit, "blocked", context, now)
    except Exception:  # never hide the fraud_limit answer behind a failure to log it
        log.exception("could not record a blocked operation's alert")


# --- texts -----------------------------------------------------------------------------


def alert_text(merchant: Merchant, alert: Alert) -> str:
    _ = gettext_for(merchant.locale or "ru")
    title = _("Blocked") if alert.action == "blocked" else _("Alert")
    local = alert.created_at.astimezone(merchant_tz(merchant))
    lines = [
        f"<b>⚠️ {html.escape(title)}: {html.escape(_(RULE_TITLES.get(alert.rule, alert.rule)))}</b>",
        html.escape(merchant.name),
        html.escape(message_in(merchant.locale or "ru", alert)),
        f"{_('Card')}: <code>{html.escape(alert.card_code or '-')}</code>",
        f"{_('Staff member')}: {html.escape(alert.actor_name or alert.actor_type or '-')}",
        f"{_('Amount')}: {html.escape(money(alert.amount or 0, merchant.currency))}",
        f"{local:%d.%m.%Y %H:%M}",
    ]
    if alert.operation == "login":  # no card and no amount
        lines = [line for i, line in enumerate(lines) if i not in (3, 5)]
    return "\n".join(lines)


def message_in(lang: str, alert: Alert) -> str:
    """The rule's message in `lang` (plural forms by its count), from the alert's details;
    the stored English text when the details do not fit the message."""
    template = fr.MESSAGES.get(alert.rule)
    try:
        return translate(lang, template, alert.details) if template else alert.message
    except (KeyError, IndexError, ValueError, TypeError):
        return alert.message


RULE_TITLES = {
    "max_accrual_per_day": "Too many points accrued today",
    "max_redemption_per_day": "Too many points redeemed today",
    "max_purchases_per_hour": "Too many purchases within an hour",
    "own_card": "A cashier served their own card",
    "refund_window": "A late refund",
    "refund_manager_only": "A refund by a cashier",
    "login_locked": "A login locked after wrong passwords",
    "large_redemption": "A large redemption",
    "cashier_burst": "Many operations by one staff member",
    "max_certificate_spend_per_day": "Too much spent from a gift certificate today",
}


# --- alert list ------------------------------------------------------------------------


def alert_view(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "rule": alert.rule,
        "title": RULE_TITLES.get(alert.rule, alert.rule),
        "action": alert.action,
        "operation": alert.operation,
        "card": alert.card_code,
        "actor_type": alert.actor_type,
        "actor_id": alert.actor_id,
        "actor_name": alert.actor_name,
        "location_id": alert.location_id,
        "amount": alert.amount,
        "message": alert.message,
        "details": alert.details,
        "count": alert.count,
        "created_at": alert.created_at.isoformat(),
        "last_seen_at": alert.last_seen_at.isoformat(),
        "acknowledged_at": alert.acknowledged_at.isoformat() if alert.acknowledged_at else None,
        "acknowledged_by": alert.acknowledged_by,
    }


def acknowledge(session: Session, actor: Actor, alert_id: int) -> Alert:
    actor.require("manager")
    alert = session.get(Alert, alert_id)
    if alert is None or alert.merchant_id != actor.merchant_id:
        raise not_found("alert")
    if alert.acknowledged_at is None:
        alert.acknowledged_at = db.utcnow()
        alert.acknowledged_by = actor.name or f"{actor.kind} {actor.id}"
        audit(session, actor, "alert.acknowledge", "alert", alert.id, {"rule": alert.rule})
    return alert


# --- the daily digest ------------------------------------------------------------------


def digest_text(session: Session, merchant: Merchant, day: dt.date) -> str:
    """Yesterday at a glance: sales, points, refunds, new guests, alerts."""
    _ = gettext_for(merchant.locale or "ru")
    tz = merchant_tz(merchant)
    start = dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(dt.UTC)
    end = start + dt.timedelta(days=1)
    m = merchant.id
    sales = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(Purchase.amount), 0),
            func.coalesce(func.sum(Purchase.points_accrued), 0),
            func.coalesce(func.sum(Purchase.points_redeemed), 0),
        ).where(Purchase.merchant_id == m, Purchase.created_at >= start, Purchase.created_at < end)
    ).one()
    refunds = session.execute(
        select(func.count(), func.coalesce(func.sum(Refund.amount), 0)).where(
            Refund.merchant_id == m, Refund.created_at >= start, Refund.created_at < end
        )
    ).one()
    new_cards = session.scalar(
        select(func.count()).where(Card.merchant_id == m, Card.created_at >= start, Card.created_at < end)
    )
    alerts = session.execute(
        select(Alert.rule, Alert.action, func.sum(Alert.count))
        .where(Alert.merchant_id == m, Alert.created_at >= start, Alert.created_at < end)
        .group_by(Alert.rule, Alert.action)
    ).all()
    lines = [
        f"<b>📊 {html.escape(merchant.name)} — {day:%d.%m.%Y}</b>",
        f"{_('Purchases')}: {sales[0]} · {html.escape(money(int(sales[1]), merchant.currency))}",
        f"{_('Points accrued')}: {int(sales[2])} · {_('redeemed')}: {int(sales[3])}",
        f"{_('Refunds')}: {refunds[0]} · {html.escape(money(int(refunds[1]), merchant.currency))}",
        f"{_('New cards')}: {int(new_cards or 0)}",
    ]
    if alerts:
        lines.append(f"<b>{_('Alerts')}</b>")
        for rule, action, n in sorted(alerts, key=lambda row: (row[0], row[1])):
            mark = "⛔" if action == "blocked" else "⚠️"
            lines.append(f"{mark} {html.escape(_(RULE_TITLES.get(rule, rule)))}: {int(n)}")
    else:
        lines.append(_("No alerts."))
    return "\n".join(lines)


def digest_candidates() -> Select[Merchant]:
    """The merchants with an alert chat set (settings.telegram.chat_id): the digest job
    reads those, not every merchant of the installation every 5 minutes."""
    chat_id = Merchant.settings[("telegram", "chat_id")].as_string()
    return select(Merchant).where(chat_id.is_not(None), chat_id != "")


def send_digests(now: dt.datetime | None = None) -> int:
    """Periodic job: once per merchant-local day, after digest_hour, yesterday's digest."""
    now = now or db.utcnow()
    sent = 0
    with db.read() as session:
        merchants = [m for m in session.scalars(digest_candidates()) if _telegram_ready(m, "digest")]
    for merchant in merchants:
        local = now.astimezone(merchant_tz(merchant))
        if local.hour < int(telegram_settings(merchant).get("digest_hour", 9)):
            continue
        day = local.date()
        try:
            with db.transaction() as session:
                if session.scalar(
                    select(Digest.id).where(Digest.merchant_id == merchant.id, Digest.day == day)
                ):
                    continue
                session.add(Digest(merchant_id=merchant.id, day=day, created_at=now))
                session.flush()
                text = digest_text(session, merchant, day - dt.timedelta(days=1))
                enqueue(session, merchant.id, TELEGRAM_TOPIC, {"text": text})
                sent += 1
        except IntegrityError:  # another process sent it a moment ago
            continue
    return sent
