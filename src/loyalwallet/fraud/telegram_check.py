"""Telegram for the owner: a test message sent now (not through the outbox), so the page
says "sent" only when the Bot API answered ok, and the Bot API's errors in words the
owner can act on (errors.Explained: translated by the page)."""

from __future__ import annotations

import html
from typing import Any

from loyalwallet.errors import Explained
from loyalwallet.fraud import telegram
from loyalwallet.fraud.service import bot_token, telegram_settings
from loyalwallet.merchants.models import Merchant
from loyalwallet.text import gettext_for

TEST_TEXT = "✅ loyalwallet: a test message for {name}. Alerts and the daily digest will come to this chat."


def explain(exc: telegram.TelegramError) -> Explained:
    """The Bot API's refusal (or silence) as something the owner can act on."""
    description = exc.description.lower()
    if exc.status is None:
        return Explained(
            "telegram_unavailable",
            "Telegram cannot be reached from the server (api.telegram.org): check its internet connection",
        )
    if exc.status in (401, 404):
        return Explained(
            "telegram_token_invalid", "Telegram does not accept this bot token: copy it again from @BotFather"
        )
    if exc.status == 400 and "chat not found" in description:
        return Explained(
            "validation_error",
            "Telegram does not know this chat: write to your bot first (press Start), then check the chat id",
        )
    if exc.status == 403:
        return Explained(
            "validation_error", "The bot may not write to this chat: it was blocked or removed from the chat"
        )
    if exc.status == 429:
        return Explained(
            "rate_limited",
            "Telegram asks to wait {seconds} s before the next message",
            seconds=int(exc.retry_after or 1),
        )
    if exc.status >= 500:
        return Explained(
            "telegram_unavailable",
            "Telegram is not answering right now ({status}); try again in a minute",
            status=exc.status,
        )
    return Explained(
        "validation_error", "Telegram refused the message: {description}", description=exc.description
    )


def test_text(merchant: Merchant, *, markup: bool = False) -> str:
    """What the test button sends, in the owner's language (`markup`: as sent, HTML-escaped)."""
    name = html.escape(merchant.name) if markup else merchant.name
    return gettext_for(merchant.locale or "ru")(TEST_TEXT).format(name=name)


def send_test(merchant: Merchant) -> dict[str, Any]:
    """Send the test message now; the Bot API's answer or an Explained error."""
    token = bot_token(merchant)
    chat_id = telegram_settings(merchant).get("chat_id")
    if token is None:
        raise Explained(
            "telegram_not_configured", "enter the bot token from @BotFather (or set it on the server)"
        )
    if not chat_id:
        raise Explained("telegram_not_configured", "enter the chat id, or link a chat with the button below")
    text = test_text(merchant)
    try:
        result = telegram.send_message(token, str(chat_id), test_text(merchant, markup=True))
    except telegram.TelegramError as exc:
        raise explain(exc) from None
    return {"message_id": result.get("message_id"), "chat_id": str(chat_id), "text": text}
