"""The guests' Telegram card: the merchant's bot, one-time start links, bound chats."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from loyalwallet.db import Base, BigID, IdPK, Timestamp


class TelegramBot(Base):
    """The merchant's guest bot (one per merchant). The token is sealed; its hash finds the
    merchant an update came for. `mode`: "webhook" (setWebhook, HTTPS installs) or
    "polling" (getUpdates by the worker). Only the webhook secret's hash is kept."""

    __tablename__ = "telegram_bots"

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"), unique=True)
    token_enc: Mapped[bytes] = mapped_column(LargeBinary)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    username: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    # Set when Telegram rejects the token (401): polling stops, the owner is told once.
    broken_at: Mapped[dt.datetime | None]
    broken_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[Timestamp]
    updated_at: Mapped[Timestamp]


class TelegramStart(Base):
    """A one-time `https://t.me/<bot>?start=<token>` for one card (only the hash is kept).
    The first chat that sends it claims it (`chat_hash`); it binds once that chat confirms."""

    __tablename__ = "telegram_starts"

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    card_id: Mapped[int] = mapped_column(BigID, ForeignKey("cards.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    chat_hash: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]
    created_at: Mapped[Timestamp]


class TelegramChat(Base):
    """A card bound to a guest's private chat: one chat per card, one card per chat and
    merchant (binding another card of the merchant in the chat replaces the first).
    The chat id is sealed; `chat_hash` (a blind index) finds the binding of an update."""

    __tablename__ = "telegram_chats"
    __table_args__ = (UniqueConstraint("merchant_id", "chat_hash"),)

    id: Mapped[IdPK]
    merchant_id: Mapped[int] = mapped_column(BigID, ForeignKey("merchants.id"))
    card_id: Mapped[int] = mapped_column(BigID, ForeignKey("cards.id"), unique=True)
    chat_enc: Mapped[bytes] = mapped_column(LargeBinary)
    chat_hash: Mapped[str] = mapped_column(String(64))
    # The guest's choice: card changes and campaign/trigger messages come to the chat.
    notify: Mapped[bool] = mapped_column(Boolean, default=True)
    notified_version: Mapped[int] = mapped_column(Integer, default=0)
    message_at: Mapped[dt.datetime | None]  # the card message last passed on
    bound_at: Mapped[Timestamp]
