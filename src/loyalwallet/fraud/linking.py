"""Linking the owner's Telegram chat without typing a chat id.

The owner asks for a link (`POST /alerts/telegram/link`): a one-time code and
`https://t.me/<bot>?start=<code>` (the bot's username from getMe). Opening it in Telegram
and pressing Start sends `/start <code>` to the bot. The worker (every few seconds while
a code is pending) or the owner's "check" reads the bot's updates (getUpdates) and binds
the chat that sent a pending code. Updates are confirmed as they are read, and every
pending code of every merchant sharing the bot is matched, so none is lost.

An update that carries no owner's code goes to UPDATE_LISTENERS (wiring.py: the guests'
Telegram card, whose bot may be the same), whether it came by getUpdates or a webhook
(`handle_update`).
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import re
import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from loyalwallet import crypto, db
from loyalwallet.errors import DomainError, Explained
from loyalwallet.fraud import telegram, telegram_check
from loyalwallet.fraud.models import TelegramLink
from loyalwallet.fraud.service import TELEGRAM_TOPIC, bot_token, telegram_settings
from loyalwallet.merchants.actors import Actor, system
from loyalwallet.merchants.models import Merchant
from loyalwallet.merchants.service import audit, get_merchant
from loyalwallet.outbox.service import enqueue
from loyalwallet.text import gettext_for

log = logging.getLogger("loyalwallet.telegram")

LINK_TTL = dt.timedelta(minutes=15)
# What Telegram sends for a t.me/<bot>?start=<code> link (the code: [A-Za-z0-9_-], <= 64).
_START = re.compile(r"^/start(?:@\w+)?\s+([A-Za-z0-9_-]{16,64})\s*$")
_MAX_PAGES = 10  # getUpdates pages (100 updates each) read per poll

# Who hears an update that is no owner's link code: (bot token, update). Set by wiring.
UPDATE_LISTENERS: list[Callable[[str, dict[str, Any]], None]] = []


def bot_username(merchant_id: int) -> str:
    """The merchant's bot (its own or the installation's) as getMe names it."""
    with db.read() as session:
        token = bot_token(get_merchant(session, merchant_id))
    if token is None:
        raise Explained(
            "telegram_not_configured", "enter the bot token from @BotFather (or set it on the server)"
        )
    try:
        username = telegram.get_me(token).get("username")
    except telegram.TelegramError as exc:
        # 401/404: Telegram does not know this token (the owner's input, not an outage).
        raise telegram_check.explain(exc) from None
    if not username:
        raise Explained("telegram_unavailable", "Telegram named no username for this bot")
    return str(username)


def start(session: Session, actor: Actor, username: str, now: dt.datetime | None = None) -> dict[str, Any]:
    """A new one-time code (the merchant's earlier unused ones stop working)."""
    actor.require("owner")
    now = now or db.utcnow()
    session.execute(
        delete(TelegramLink).where(
            TelegramLink.merchant_id == actor.merchant_id, TelegramLink.linked_at.is_(None)
        )
    )
    code = secrets.token_urlsafe(18)
    link = TelegramLink(
        merchant_id=actor.merchant_id,
        code_hash=crypto.sha256_hex(code),
        bot_username=username,
        expires_at=now + LINK_TTL,
        created_at=now,
    )
    session.add(link)
    session.flush()
    audit(session, actor, "telegram.link", "merchant", actor.merchant_id, {"bot": username})
    return {
        "code": code,
        "url": f"https://t.me/{username}?start={code}",
        "bot_username": username,
        "expires_at": link.expires_at.isoformat(),
    }


def status(session: Session, merchant_id: int, now: dt.datetime | None = None) -> dict[str, Any]:
    """The latest link: pending, linked or expired (none: status "none")."""
    now = now or db.utcnow()
    link = session.scalar(
        select(TelegramLink)
        .where(TelegramLink.merchant_id == merchant_id)
        .order_by(TelegramLink.id.desc())
        .limit(1)
    )
    if link is None:
        return {"status": "none"}
    state = "linked" if link.linked_at else ("expired" if link.expires_at <= now else "pending")
    return {
        "status": state,
        "bot_username": link.bot_username,
        "chat_id": link.chat_id,
        "expires_at": link.expires_at.isoformat(),
        "linked_at": link.linked_at.isoformat() if link.linked_at else None,
    }


def check(actor: Actor) -> dict[str, Any]:
    """The owner's "check": read the bot's updates now, then say where the link stands."""
    actor.require("owner")
    with db.read() as session:
        current = status(session, actor.merchant_id)
        token = bot_token(get_merchant(session, actor.merchant_id))
    if current["status"] == "none":
        raise DomainError("telegram_link_missing", "start linking first: POST /api/v1/alerts/telegram/link")
    if current["status"] == "pending" and token is not None:
        try:
            poll(token)
        except telegram.TelegramError as exc:
            raise telegram_check.explain(exc) from None
        with db.read() as session:
            current = status(session, actor.merchant_id)
    return current


def poll(token: str, now: dt.datetime | None = None) -> int:
    """Read (and confirm) the bot's pending updates; bind every chat that sent a pending
    code of a merchant using this bot. Returns how many chats were bound."""
    offset: int | None = None
    bound = 0
    for _ in range(_MAX_PAGES):
        payload: dict[str, Any] = {"timeout": 0, "limit": 100, "allowed_updates": telegram.ALLOWED_UPDATES}
        if offset is not None:
            payload["offset"] = offset  # also confirms everything before it
        updates = telegram.call(token, "getUpdates", payload) or []
        if not updates:
            break
        for item in updates:
            offset = max(offset or 0, int(item.get("update_id", 0)) + 1)
            bound += handle_update(token, item, now)
    return bound


def handle_update(token: str, item: dict[str, Any], now: dt.datetime | None = None) -> int:
    """One update of a bot: an owner's pending code binds the chat (1); anything else goes
    to the UPDATE_LISTENERS (0)."""
    message = item.get("message") or {}
    match = _START.match(str(message.get("text") or ""))
    chat_id = (message.get("chat") or {}).get("id")
    if match and chat_id is not None and _bind(token, match.group(1), str(chat_id), now or db.utcnow()):
        return 1
    for listener in UPDATE_LISTENERS:
        try:
            listener(token, item)
        except Exception:  # one bad update must not stop the rest of the page
            log.exception("telegram update listener failed")
    return 0


def _bind(token: str, code: str, chat_id: str, now: dt.datetime) -> int:
    with db.transaction() as session:
        link = session.scalar(select(TelegramLink).where(TelegramLink.code_hash == crypto.sha256_hex(code)))
        if link is None or link.linked_at is not None or link.expires_at <= now:
            return 0
        merchant = session.get(Merchant, link.merchant_id)
        if merchant is None or bot_token(merchant) != token:
            return 0  # the code was sent to another bot than the one it was made for
        # One use only, even with two pollers at once: the first UPDATE wins.
        won = session.execute(  # type: ignore[attr-defined]  # a CursorResult at run time, typed as Result
            update(TelegramLink)
            .where(TelegramLink.id == link.id, TelegramLink.linked_at.is_(None))
            .values(linked_at=now, chat_id=chat_id)
        ).rowcount
        if won != 1:
            return 0
        merchant.settings = {
            **(merchant.settings or {}),
            "telegram": {**telegram_settings(merchant), "chat_id": chat_id},
        }
        audit(session, system(merchant.id), "telegram.linked", "merchant", merchant.id, {"chat_id": chat_id})
        _ = gettext_for(merchant.locale or "ru")
        text = _("✅ This chat now receives loyalwallet alerts for {name}.").format(
            name=html.escape(merchant.name)
        )
        enqueue(session, merchant.id, TELEGRAM_TOPIC, {"text": text})
        return 1


def poll_pending(now: dt.datetime | None = None) -> int:
    """Periodic job: poll each bot that has a pending code (one read when none is)."""
    now = now or db.utcnow()
    with db.read() as session:
        pending = select(TelegramLink.merchant_id).where(
            TelegramLink.linked_at.is_(None), TelegramLink.expires_at > now
        )
        tokens = {bot_token(m) for m in session.scalars(select(Merchant).where(Merchant.id.in_(pending)))}
    bound = 0
    for token in sorted(t for t in tokens if t is not None):
        try:
            bound += poll(token, now)
        except telegram.TelegramError as exc:
            log.warning("telegram getUpdates failed: %s", exc)
    return bound
