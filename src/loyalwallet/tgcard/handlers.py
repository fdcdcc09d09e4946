"""Outbox handlers of the guests' Telegram card (listed in wiring.py): an update from the
bot (`tgcard.update`), a message to a chat (`tgcard.send`) and the card.changed listener
that tells a bound chat about its card. Bot API errors: 429 and 5xx/network are retried
with backoff (Retry, Telegram's retry_after first); 403 (the guest blocked the bot)
unbinds the chat; other 4xx dead-letter the row."""

from __future__ import annotations

import datetime as dt
import io
import zoneinfo
from typing import Any

import segno
from sqlalchemy import select, update

from loyalwallet import db
from loyalwallet.cards.book import MESSAGE_ONLY
from loyalwallet.cards.handlers import changed_cards
from loyalwallet.cards.models import Card
from loyalwallet.cards.views import card_view, ledger_view
from loyalwallet.enrollment.rules import offer_lines
from loyalwallet.fraud import telegram
from loyalwallet.merchants.models import Merchant
from loyalwallet.outbox.handlers import Delivery, Permanent, Retry
from loyalwallet.outbox.service import enqueue
from loyalwallet.programs.models import Program
from loyalwallet.programs.service import rules_of
from loyalwallet.text import gettext_for, translate
from loyalwallet.tgcard import bots, rules, service
from loyalwallet.tgcard.models import TelegramChat


def on_update(msg: Delivery) -> None:
    if msg.merchant_id is not None:
        service.handle(msg.merchant_id, msg.payload)


def qr_png(code: str) -> bytes:
    out = io.BytesIO()
    segno.make(code, error="m").save(out, kind="png", scale=8, border=3)
    return out.getvalue()


def _lang(session: Any, card: Card, merchant: Merchant) -> str:
    from loyalwallet.customers.models import Customer

    customer = session.get(Customer, card.customer_id) if card.customer_id else None
    return (customer.locale if customer else None) or merchant.locale or "ru"


def _compose(msg: Delivery) -> tuple[str, str, dict[str, Any]] | None:
    """(token, chat id, what to send) for the row, None when there is nothing to send."""
    p = msg.payload
    assert msg.merchant_id is not None
    with db.read() as session:
        bot = bots.bot_of(session, msg.merchant_id)
        merchant = session.get(Merchant, msg.merchant_id)
        if bot is None or merchant is None:
            return None
        token = bots.token_of(bot)
        if "chat" in p:
            return (
                token,
                service.open_chat(msg.merchant_id, p["chat"]),
                {"text": p["text"], "keyboard": p.get("keyboard")},
            )
        bound = service.binding(session, int(p["card_id"]))
        card = session.get(Card, int(p["card_id"]))
        if bound is None or card is None:
            return None  # unbound since
        program = session.get(Program, card.program_id)
        assert program is not None
        chat_id = service.open_chat(msg.merchant_id, _sealed(bound))
        lang = _lang(session, card, merchant)
        _ = gettext_for(lang)
        view = card_view(session, card, program, with_customer=False)
        what = p.get("what")
        if what == "history":
            tz = zoneinfo.ZoneInfo(merchant.timezone)
            items = [i for i in ledger_view(session, card, 15) if i.get("points") or i.get("stamps")][:10]
            text = rules.history_text(
                items,
                when=lambda iso: dt.datetime.fromisoformat(iso).astimezone(tz).strftime("%d.%m %H:%M"),
                _=_,
            )
            return token, chat_id, {"text": text, "chat_hash": bound.chat_hash}
        if what == "text":  # a campaign's message
            return token, chat_id, {"text": p["text"], "chat_hash": bound.chat_hash}
        if what == "change":
            if not bound.notify or card.version <= bound.notified_version:
                return None
            fresh = (
                card.message
                if card.message
                and card.message_at
                and (bound.message_at is None or card.message_at > bound.message_at)
                else None
            )
            if p.get("reason") == MESSAGE_ONLY and fresh is None:
                return None
            notice = rules.change_text(view, message=fresh, _=_)
            seen = {"card_id": card.id, "version": card.version, "message_at": card.message_at}
            return (
                (token, chat_id, {"text": notice, "chat_hash": bound.chat_hash, "seen": seen})
                if notice
                else None
            )
        offers = [translate(lang, line, params) for line, params in offer_lines(rules_of(program))]
        caption = rules.card_caption(
            view,
            merchant=merchant.name,
            code=card.code,
            offers=offers,
            message=card.message,
            _=_,
        )
        return (
            token,
            chat_id,
            {
                "photo": card.code if card.status == "active" else None,
                "text": caption,
                "keyboard": rules.card_keyboard(bound.notify, _),
                "chat_hash": bound.chat_hash,
            },
        )


def _sealed(bound: TelegramChat) -> str:
    import base64

    return base64.b64encode(bound.chat_enc).decode()


def deliver(msg: Delivery) -> None:
    """tgcard.send: one message (or the card's photo) to one chat."""
    if msg.merchant_id is None:
        return
    callback_id = msg.payload.get("callback_id")
    composed = _compose(msg)
    try:
        if callback_id and msg.attempts == 1:
            try:
                telegram.answer_callback_query(
                    composed[0] if composed else _token(msg.merchant_id), callback_id
                )
            except (telegram.TelegramError, LookupError):
                pass  # the button's spinner stops by itself; the answer below matters
        if composed is None:
            return
        token, chat_id, out = composed
        if out.get("photo"):
            telegram.send_photo(
                token, chat_id, qr_png(out["photo"]), out["text"], reply_markup=out.get("keyboard")
            )
        else:
            telegram.send_message(token, chat_id, out["text"], reply_markup=out.get("keyboard"))
        if out.get("seen"):
            _mark_seen(out["seen"])
    except telegram.TelegramError as exc:
        if exc.status == 403:  # "Forbidden: bot was blocked by the user"
            card_id = msg.payload.get("card_id")
            key = (composed or ("", "", {}))[2].get("chat_hash")
            if key is None and "chat" in msg.payload:
                key = service.chat_hash(
                    msg.merchant_id, service.open_chat(msg.merchant_id, msg.payload["chat"])
                )
            service.unbind_chat(msg.merchant_id, int(card_id) if card_id else None, key, "blocked")
            return
        if bots.rejected(exc):  # the token was revoked: the owner must paste a new one
            bots.mark_broken(msg.merchant_id, str(exc))
        if exc.permanent:
            raise Permanent(str(exc)) from exc
        raise Retry(str(exc), after=exc.retry_after) from exc


def _mark_seen(seen: dict[str, Any]) -> None:
    """The chat has heard of the card up to this version (and message): no repeat."""
    with db.transaction() as session:
        session.execute(
            update(TelegramChat)
            .where(TelegramChat.card_id == seen["card_id"], TelegramChat.notified_version < seen["version"])
            .values(notified_version=seen["version"], message_at=seen["message_at"])
        )


def _token(merchant_id: int) -> str:
    with db.read() as session:
        bot = bots.bot_of(session, merchant_id)
        if bot is None:
            raise LookupError("no bot")
        return bots.token_of(bot)


def on_card_changed(msg: Delivery) -> None:
    """CARD_CHANGED_LISTENERS: a bound chat that wants notices hears about its card."""
    if msg.merchant_id is None:
        return
    card_ids = changed_cards(msg)
    with db.read() as session:
        bound = session.scalars(
            select(TelegramChat.card_id).where(
                db.in_ids(TelegramChat.card_id, card_ids), TelegramChat.notify.is_(True)
            )
        ).all()
    if not bound:
        return
    with db.transaction() as session:
        for card_id in bound:
            enqueue(
                session,
                msg.merchant_id,
                service.SEND_TOPIC,
                {"card_id": card_id, "what": "change", "reason": msg.payload.get("reason")},
                place=msg.created_at,
            )
