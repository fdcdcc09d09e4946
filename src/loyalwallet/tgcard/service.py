"""The guests' Telegram card: one-time start links, what a guest's message or button
does (bind after confirming, the card, history, notifications, unbind), and the queued
messages (`tgcard.send`, delivered by tgcard.handlers).

One card per chat and merchant: a chat that confirms a second card of the same merchant
shows that card from then on (the bot says which card it replaces before the guest
confirms); a card bound in a new chat leaves the old one (the guest's new phone).
Chat ids are sealed wherever they are kept (the bindings, the outbox rows).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from loyalwallet import crypto, db
from loyalwallet.cards.models import Card
from loyalwallet.merchants.actors import system
from loyalwallet.merchants.models import Merchant
from loyalwallet.merchants.service import audit
from loyalwallet.outbox.service import enqueue
from loyalwallet.programs.models import Program
from loyalwallet.text import gettext_for
from loyalwallet.tgcard import bots, rules
from loyalwallet.tgcard.models import TelegramChat, TelegramStart

UPDATE_TOPIC = "tgcard.update"
SEND_TOPIC = "tgcard.send"
MAX_OPEN_STARTS = 5  # unused start links per card (older ones stop working)


def seal_chat(merchant_id: int, chat_id: str) -> str:
    sealed = crypto.seal(chat_id, merchant_id=merchant_id, column="telegram_chat")
    assert sealed is not None
    return base64.b64encode(sealed).decode()


def open_chat(merchant_id: int, sealed: str) -> str:
    chat = crypto.open_(base64.b64decode(sealed), merchant_id=merchant_id, column="telegram_chat")
    assert chat is not None
    return chat


def chat_hash(merchant_id: int, chat_id: str) -> str:
    return crypto.blind_index(f"telegram:{chat_id}", merchant_id=merchant_id)


def ready(session: Session, merchant_id: int) -> bool:
    """Whether the card pages offer "Open in Telegram" (the merchant has a guest bot)."""
    bot = bots.bot_of(session, merchant_id)
    return bot is not None and bot.broken_at is None


def binding(session: Session, card_id: int) -> TelegramChat | None:
    return session.scalar(select(TelegramChat).where(TelegramChat.card_id == card_id))


def start_link(session: Session, card: Card, now: dt.datetime | None = None) -> str:
    """A new one-time `https://t.me/<bot>?start=<token>` for the card (its guest's page)."""
    now = now or db.utcnow()
    bot = bots.bot_of(session, card.merchant_id)
    if bot is None or card.status != "active":
        from loyalwallet.errors import DomainError

        raise DomainError("not_found", "no Telegram card here")
    open_ = session.scalars(
        select(TelegramStart.id)
        .where(TelegramStart.card_id == card.id, TelegramStart.used_at.is_(None))
        .order_by(TelegramStart.id.desc())
    ).all()
    stale = list(open_[MAX_OPEN_STARTS - 1 :])
    session.execute(
        delete(TelegramStart).where(
            TelegramStart.card_id == card.id,
            (TelegramStart.expires_at <= now) | TelegramStart.id.in_(stale or [0]),
        )
    )
    token = crypto.token(24)
    session.add(
        TelegramStart(
            merchant_id=card.merchant_id,
            card_id=card.id,
            token_hash=crypto.sha256_hex(token),
            expires_at=now + dt.timedelta(minutes=rules.START_TTL_MINUTES),
            created_at=now,
        )
    )
    return f"https://t.me/{bot.username}?start={token}"


# --- updates ---------------------------------------------------------------------------


def intake(token: str, update: dict[str, Any]) -> None:
    """fraud.linking.UPDATE_LISTENERS: an update of a merchant's guest bot becomes a
    `tgcard.update` row (the chat id sealed); other bots' updates are not ours."""
    command = rules.parse(update)
    if command is None:
        return
    with db.transaction() as session:
        bot = bots.by_token(session, token)
        if bot is None:
            return
        enqueue(
            session,
            bot.merchant_id,
            UPDATE_TOPIC,
            {
                "name": command.name,
                "chat": seal_chat(bot.merchant_id, command.chat_id),
                "private": command.private,
                "arg": command.arg,
                "callback_id": command.callback_id,
                "lang": command.language,
            },
        )


def _reply(session: Session, merchant_id: int, chat: str, text: str, **extra: Any) -> None:
    enqueue(session, merchant_id, SEND_TOPIC, {"chat": chat, "text": text, **extra})


def send_card(session: Session, card: TelegramChat | Card, *, callback_id: str | None = None) -> None:
    """Queue the card (its QR as a photo, the figures, the buttons) to its bound chat."""
    card_id = card.card_id if isinstance(card, TelegramChat) else card.id
    payload: dict[str, Any] = {"card_id": card_id, "what": "card"}
    if callback_id:
        payload["callback_id"] = callback_id
    enqueue(session, card.merchant_id, SEND_TOPIC, payload)


def handle(merchant_id: int, payload: dict[str, Any], now: dt.datetime | None = None) -> None:
    """tgcard.update: what the guest asked for; the answers are queued as tgcard.send."""
    now = now or db.utcnow()
    name, arg, callback_id = payload["name"], payload.get("arg"), payload.get("callback_id")
    chat_id = open_chat(merchant_id, payload["chat"])
    with db.transaction() as session:
        merchant = session.get(Merchant, merchant_id)
        if merchant is None or bots.bot_of(session, merchant_id) is None:
            return
        _ = gettext_for(payload.get("lang") or merchant.locale or "ru")
        chat = payload["chat"]
        key = chat_hash(merchant_id, chat_id)
        bound = session.scalar(
            select(TelegramChat).where(TelegramChat.merchant_id == merchant_id, TelegramChat.chat_hash == key)
        )
        extra = {"callback_id": callback_id} if callback_id else {}
        if not payload.get("private"):
            _reply(session, merchant_id, chat, _("Open me in a private chat to see your card."), **extra)
        elif name == "start" and arg:
            _claim(session, merchant, arg, chat, key, bound, now, _)
        elif name in ("bind", "cancel") and arg:
            _confirm(session, merchant, int(arg), name == "bind", chat, chat_id, key, bound, now, _, extra)
        elif bound is None:
            _reply(
                session,
                merchant_id,
                chat,
                _('No card is shown here yet. Open your card\'s page and press "Open in Telegram".'),
                **extra,
            )
        elif name == "history":
            enqueue(session, merchant_id, SEND_TOPIC, {"card_id": bound.card_id, "what": "history", **extra})
        elif name == "notify":
            bound.notify = not bound.notify
            text = (
                _("Notifications are on: news and card changes will come here.")
                if bound.notify
                else _("Notifications are off.")
            )
            _reply(session, merchant_id, chat, text, **extra)
        elif name == "unbind":
            session.delete(bound)
            audit(session, system(merchant_id), "tgcard.unbound", "card", bound.card_id, {"by": "guest"})
            _reply(
                session,
                merchant_id,
                chat,
                _("The card is no longer shown in this chat. It stays on its page."),
                **extra,
            )
        else:
            send_card(session, bound, callback_id=callback_id)


def _card_label(session: Session, card_id: int) -> str:
    card = session.get(Card, card_id)
    program = session.get(Program, card.program_id) if card else None
    if card is None or program is None:
        return "—"
    return f"{html.escape(program.name)} ••••{card.code[-4:]}"


def _claim(
    session: Session,
    merchant: Merchant,
    token: str,
    chat: str,
    key: str,
    bound: TelegramChat | None,
    now: dt.datetime,
    _: Any,
) -> None:
    """/start <token>: the first chat to send a live token claims it and is asked to confirm."""
    start = session.scalar(select(TelegramStart).where(TelegramStart.token_hash == crypto.sha256_hex(token)))
    if (
        start is None
        or start.merchant_id != merchant.id
        or start.used_at is not None
        or start.expires_at <= now
        or (start.chat_hash is not None and start.chat_hash != key)
    ):
        _reply(
            session,
            merchant.id,
            chat,
            _('This link does not work any more. Open your card\'s page and press "Open in Telegram" again.'),
        )
        return
    start.chat_hash = key
    label = _card_label(session, start.card_id)
    lines = [
        _("Show the card {card} of {merchant} in this chat?").format(
            card=label, merchant=html.escape(merchant.name)
        )
    ]
    if bound is not None and bound.card_id != start.card_id:
        lines.append(
            _("This chat shows the card {card} now: it will show the new one instead.").format(
                card=_card_label(session, bound.card_id)
            )
        )
    lines.append(_("Card changes and the café's news will come here; you can turn them off."))
    _reply(session, merchant.id, chat, "\n\n".join(lines), keyboard=rules.confirm_keyboard(start.id, _))


def _confirm(
    session: Session,
    merchant: Merchant,
    start_id: int,
    yes: bool,
    chat: str,
    chat_id: str,
    key: str,
    bound: TelegramChat | None,
    now: dt.datetime,
    _: Any,
    extra: dict[str, Any],
) -> None:
    start = session.get(TelegramStart, start_id)
    if start is None or start.merchant_id != merchant.id or start.chat_hash != key:
        _reply(session, merchant.id, chat, _("This button does not work any more."), **extra)
        return
    # One use, even with two presses processed at once: the first UPDATE wins.
    won = session.execute(  # type: ignore[attr-defined]  # a CursorResult at run time
        update(TelegramStart)
        .where(TelegramStart.id == start.id, TelegramStart.used_at.is_(None), TelegramStart.expires_at > now)
        .values(used_at=now)
    ).rowcount
    if won != 1:
        _reply(session, merchant.id, chat, _("This button does not work any more."), **extra)
        return
    card = session.get(Card, start.card_id)
    if not yes or card is None or card.status != "active":
        _reply(session, merchant.id, chat, _("Cancelled."), **extra)
        return
    # One card per chat and merchant, one chat per card: the earlier bindings go.
    session.execute(
        delete(TelegramChat).where(
            (TelegramChat.card_id == card.id)
            | ((TelegramChat.merchant_id == merchant.id) & (TelegramChat.chat_hash == key))
        )
    )
    session.flush()
    sealed = crypto.seal(chat_id, merchant_id=merchant.id, column="telegram_chat")
    assert sealed is not None
    binding_ = TelegramChat(
        merchant_id=merchant.id,
        card_id=card.id,
        chat_enc=sealed,
        chat_hash=key,
        notify=True,
        notified_version=card.version,
        message_at=card.message_at,
        bound_at=now,
    )
    session.add(binding_)
    audit(
        session,
        system(merchant.id),
        "tgcard.bound",
        "card",
        card.id,
        {"replaced_card": bound.card_id if bound is not None and bound.card_id != card.id else None},
    )
    send_card(session, card, callback_id=extra.get("callback_id"))


def unbind_chat(merchant_id: int, card_id: int | None, key: str | None, reason: str) -> None:
    """The bot was blocked (403): forget the chat's binding."""
    with db.transaction() as session:
        stmt = delete(TelegramChat).where(TelegramChat.merchant_id == merchant_id)
        if card_id is not None:
            stmt = stmt.where(TelegramChat.card_id == card_id)
        if key is not None:
            stmt = stmt.where(TelegramChat.chat_hash == key)
        if session.execute(stmt).rowcount:  # type: ignore[attr-defined]
            audit(session, system(merchant_id), "tgcard.unbound", "card", card_id, {"by": reason})
