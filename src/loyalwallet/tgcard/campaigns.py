"""Telegram campaigns: campaigns.delivery.CHANNELS["telegram"] hands a chunk of
recipients to a `tgcard.campaign` row; the worker sends the campaign's text to each
card's bound chat. Only chats whose guest keeps notifications on are messaged (the
guest's choice in the bot); a card without one is skipped, a blocked bot (403) unbinds
the chat and counts the recipient failed; 429/5xx mark what went out and retry the rest."""

from __future__ import annotations

import base64
import datetime as dt
import html

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from loyalwallet import db
from loyalwallet.campaigns.models import Campaign, CampaignRecipient
from loyalwallet.campaigns.service import finish_if_done
from loyalwallet.fraud import telegram
from loyalwallet.outbox.handlers import Delivery, Retry
from loyalwallet.outbox.service import enqueue
from loyalwallet.tgcard import bots, service
from loyalwallet.tgcard.models import TelegramChat

TOPIC = "tgcard.campaign"


def hand_over(session: Session, c: Campaign, pending: dict[int, int], now: dt.datetime) -> None:
    """CHANNELS["telegram"]: one `tgcard.campaign` row for the chunk (recipients stay pending)."""
    if pending:
        enqueue(
            session, c.merchant_id, TOPIC, {"campaign_id": c.id, "recipient_ids": sorted(pending.values())}
        )


def text_of(c: Campaign) -> str:
    return f"<b>{html.escape(c.header)}</b>\n\n{html.escape(c.body)}"


def _mark(campaign_id: int, marks: dict[str, list[int]]) -> None:
    now = db.utcnow()
    errors = {"skipped": "no Telegram chat with notifications", "failed": "the guest blocked the bot"}
    with db.transaction() as session:
        for status, ids in marks.items():
            if ids:
                session.execute(
                    update(CampaignRecipient)
                    .where(CampaignRecipient.id.in_(ids), CampaignRecipient.status == "pending")
                    .values(
                        status=status, sent_at=now if status == "sent" else None, error=errors.get(status)
                    )
                )
        finish_if_done(session, campaign_id, now)


def deliver(msg: Delivery) -> None:
    campaign_id = int(msg.payload["campaign_id"])
    ids = [int(i) for i in msg.payload["recipient_ids"]]
    marks: dict[str, list[int]] = {"sent": [], "failed": [], "skipped": []}
    with db.read() as session:
        c = session.get(Campaign, campaign_id)
        if c is None:
            return
        bot = bots.bot_of(session, c.merchant_id)
        rows = session.execute(
            select(
                CampaignRecipient.id, CampaignRecipient.card_id, TelegramChat.chat_enc, TelegramChat.notify
            )
            .outerjoin(TelegramChat, TelegramChat.card_id == CampaignRecipient.card_id)
            .where(CampaignRecipient.id.in_(ids), CampaignRecipient.status == "pending")
            .order_by(CampaignRecipient.id)
        ).all()
        token = bots.token_of(bot) if bot is not None else None
        merchant_id, text = c.merchant_id, text_of(c)
        cancelled = c.status == "cancelled"
    sends: list[tuple[int, int, str]] = []
    for recipient_id, card_id, chat_enc, notify in rows:
        if cancelled or token is None or chat_enc is None or not notify:
            marks["skipped"].append(recipient_id)
        else:
            chat = service.open_chat(merchant_id, base64.b64encode(chat_enc).decode())
            sends.append((recipient_id, card_id, chat))
    try:
        for recipient_id, card_id, chat in sends:
            assert token is not None
            try:
                telegram.send_message(token, chat, text)
            except telegram.TelegramError as exc:
                if exc.status == 403:
                    service.unbind_chat(merchant_id, card_id, None, "blocked")
                    marks["failed"].append(recipient_id)
                elif exc.permanent:
                    if bots.rejected(exc):
                        bots.mark_broken(merchant_id, str(exc))
                    marks["failed"].append(recipient_id)
                else:
                    raise
            else:
                marks["sent"].append(recipient_id)
    except telegram.TelegramError as exc:
        _mark(campaign_id, marks)  # what went out stays out; the retry sends the rest
        raise Retry(str(exc), after=exc.retry_after) from exc
    _mark(campaign_id, marks)
