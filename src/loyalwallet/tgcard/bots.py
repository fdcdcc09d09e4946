"""The merchant's guest bot: connecting its token (sealed), webhook or polling, lookups.

Updates reach us one of two ways, chosen when the owner connects the bot:
- **webhook** when LOYALWALLET_BASE_URL is https: `setWebhook` to
  `<base>/telegram/hook/<merchant id>` with a fresh `secret_token`; every update must carry
  it in `X-Telegram-Bot-Api-Secret-Token` (only its hash is stored);
- **polling** otherwise (an install without HTTPS, Telegram refuses plain http):
  `deleteWebhook`, then the worker reads `getUpdates` every few seconds (`poll`).
Either way an update becomes a `tgcard.update` outbox row (tgcard.service.intake).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from loyalwallet import crypto, db
from loyalwallet.enrollment.links import base_url
from loyalwallet.errors import DomainError
from loyalwallet.fraud import linking, telegram
from loyalwallet.fraud import service as fraud_service
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.models import AuditLog, Merchant
from loyalwallet.merchants.service import audit
from loyalwallet.text import gettext_for
from loyalwallet.tgcard.models import TelegramBot, TelegramChat

log = logging.getLogger("loyalwallet.tgcard")

TOKEN_PATTERN = re.compile(r"^\d{3,20}:[\w-]{20,100}$")


def bot_of(session: Session, merchant_id: int) -> TelegramBot | None:
    return session.scalar(select(TelegramBot).where(TelegramBot.merchant_id == merchant_id))


def token_of(bot: TelegramBot) -> str:
    token = crypto.open_(bot.token_enc, merchant_id=bot.merchant_id, column="guest_bot_token")
    assert token is not None
    return token


def by_token(session: Session, token: str) -> TelegramBot | None:
    return session.scalar(select(TelegramBot).where(TelegramBot.token_hash == crypto.sha256_hex(token)))


def hook_url(merchant_id: int) -> str:
    return f"{base_url().rstrip('/')}/telegram/hook/{merchant_id}"


def _telegram_failed(exc: telegram.TelegramError, what: str) -> DomainError:
    if exc.status in (401, 404):
        return DomainError("telegram_token_invalid", "Telegram does not accept this bot token")
    return DomainError("telegram_unavailable", f"{what} failed: {exc}")


def connect(actor: Actor, token: str) -> dict[str, Any]:
    """Check the token with getMe, point the bot's updates here (webhook or polling), store
    it sealed. DomainError (validation_error, conflict, telegram_token_invalid,
    telegram_unavailable) before anything is stored."""
    actor.require("owner")
    token = token.strip()
    if not TOKEN_PATTERN.match(token):
        raise DomainError("validation_error", "this is not a bot token from @BotFather", field="token")
    with db.read() as session:
        other = by_token(session, token)
        if other is not None and other.merchant_id != actor.merchant_id:
            raise DomainError("conflict", "this bot serves another merchant")
    try:
        username = str(telegram.get_me(token).get("username") or "")
    except telegram.TelegramError as exc:
        raise _telegram_failed(exc, "getMe") from None
    if not username:
        raise DomainError("telegram_unavailable", "getMe named no bot username")
    webhook = base_url().startswith("https://")
    secret = crypto.token(32) if webhook else None
    try:
        if secret is not None:
            telegram.set_webhook(token, hook_url(actor.merchant_id), secret)
        else:
            telegram.delete_webhook(token)
    except telegram.TelegramError as exc:
        raise _telegram_failed(exc, "setWebhook" if webhook else "deleteWebhook") from None
    now = db.utcnow()
    with db.transaction() as session:
        bot = bot_of(session, actor.merchant_id)
        if bot is None:
            bot = TelegramBot(merchant_id=actor.merchant_id, created_at=now)
            session.add(bot)
        sealed = crypto.seal(token, merchant_id=actor.merchant_id, column="guest_bot_token")
        assert sealed is not None
        bot.token_enc = sealed
        bot.token_hash = crypto.sha256_hex(token)
        bot.username = username[:64]
        bot.mode = "webhook" if webhook else "polling"
        bot.secret_hash = crypto.sha256_hex(secret) if secret else None
        bot.broken_at = bot.broken_reason = None  # a new (or re-checked) token works again
        bot.updated_at = now
        session.flush()
        audit(
            session, actor, "tgcard.bot", "merchant", actor.merchant_id, {"bot": username, "mode": bot.mode}
        )
        return view(session, actor.merchant_id)


def disconnect(actor: Actor) -> None:
    """Forget the bot and every chat bound through it (the webhook is removed if Telegram
    answers; the guests' cards stay on their pages)."""
    actor.require("owner")
    with db.read() as session:
        bot = bot_of(session, actor.merchant_id)
        token = token_of(bot) if bot is not None else None
    if token is not None:
        try:
            telegram.delete_webhook(token)
        except telegram.TelegramError as exc:
            log.warning("deleteWebhook failed: %s", exc)
    with db.transaction() as session:
        session.execute(delete(TelegramChat).where(TelegramChat.merchant_id == actor.merchant_id))
        session.execute(delete(TelegramBot).where(TelegramBot.merchant_id == actor.merchant_id))
        audit(session, actor, "tgcard.bot_removed", "merchant", actor.merchant_id)


def view(session: Session, merchant_id: int) -> dict[str, Any]:
    bot = bot_of(session, merchant_id)
    if bot is None:
        return {"connected": False}
    chats = session.scalar(select(func.count()).where(TelegramChat.merchant_id == merchant_id)) or 0
    return {
        "connected": True,
        "username": bot.username,
        "mode": bot.mode,
        "chats": int(chats),
        "broken_at": bot.broken_at,
        "broken_reason": bot.broken_reason,
    }


def check_secret(session: Session, merchant_id: int, secret: str | None) -> str | None:
    """The bot's token when `secret` is its webhook's secret token, else None."""
    bot = bot_of(session, merchant_id)
    if bot is None or bot.mode != "webhook" or not bot.secret_hash or not secret:
        return None
    if not crypto.constant_time_equal(crypto.sha256_hex(secret), bot.secret_hash):
        return None
    return token_of(bot)


def poll() -> int:
    """Periodic job: read the updates of every bot in polling mode (owners' link codes
    among them are bound by fraud.linking; the rest become tgcard.update rows). A bot
    whose token Telegram rejects is marked broken and no longer polled."""
    with db.read() as session:
        bots = [
            (b.merchant_id, token_of(b))
            for b in session.scalars(
                select(TelegramBot).where(TelegramBot.mode == "polling", TelegramBot.broken_at.is_(None))
            )
        ]
    read = 0
    for merchant_id, token in bots:
        try:
            read += linking.poll(token)
        except telegram.TelegramError as exc:
            if rejected(exc):
                mark_broken(merchant_id, str(exc))
            else:
                log.warning("telegram getUpdates failed: %s", exc)
    return read


def rejected(exc: telegram.TelegramError) -> bool:
    """Telegram no longer accepts the token (revoked or regenerated in @BotFather)."""
    return exc.status == 401


def mark_broken(merchant_id: int, reason: str, now: dt.datetime | None = None) -> bool:
    """Mark the bot broken; the first to do so (a guarded UPDATE: once across workers)
    tells the owner in their alert chat, if they have one, and writes the audit log."""
    now = now or db.utcnow()
    with db.transaction() as session:
        done = session.execute(  # type: ignore[attr-defined]  # a CursorResult at run time
            update(TelegramBot)
            .where(TelegramBot.merchant_id == merchant_id, TelegramBot.broken_at.is_(None))
            .values(broken_at=now, broken_reason=reason[:200], updated_at=now)
        ).rowcount
        if not done:
            return False
        bot = bot_of(session, merchant_id)
        merchant = session.get(Merchant, merchant_id)
        if bot is not None and merchant is not None:
            _ = gettext_for(merchant.locale or "ru")
            text = _(
                "Telegram rejected the token of your guests' bot @%(bot)s. Guests get nothing in "
                "Telegram until you paste a new token from @BotFather: %(url)s"
            ) % {"bot": bot.username, "url": f"{base_url().rstrip('/')}/admin/telegram-card"}
            fraud_service.send_telegram(session, merchant, text)
        session.add(
            AuditLog(
                merchant_id=merchant_id,
                actor_type="system",
                actor_id=None,
                action="tgcard.bot_broken",
                target_type="merchant",
                target_id=str(merchant_id),
                details={"reason": reason[:200]},
                created_at=now,
            )
        )
    log.warning("guest bot of merchant %s is broken: %s", merchant_id, reason)
    return True
