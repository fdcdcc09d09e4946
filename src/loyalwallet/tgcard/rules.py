"""Pure decisions of the guests' Telegram card: what an update asks for, and the text
of the card, its history and its notices (HTML for the Bot API, every value escaped)."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# /start <token> from a t.me/<bot>?start=<token> link ([A-Za-z0-9_-], at most 64).
_START = re.compile(r"^/start(?:@\w+)?(?:\s+(\S+))?\s*$")
_COMMAND = re.compile(r"^/(card|history|unbind|notify|help)(?:@\w+)?\b")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
# Inline keyboard buttons: callback_data (at most 64 bytes, as Telegram allows).
_CALLBACK = re.compile(r"^(bind|cancel):(\d{1,18})$|^(card|history|unbind|notify)$")

START_TTL_MINUTES = 30


@dataclass(frozen=True)
class Command:
    """What a guest asked: `name` is start | card | history | unbind | notify | help |
    bind | cancel | text (anything else); `arg` the start token or the start id."""

    name: str
    chat_id: str
    private: bool
    arg: str | None = None
    callback_id: str | None = None
    language: str | None = None


def parse(update: dict[str, Any]) -> Command | None:
    """The guest's request in an update (a message or a button press), None for others."""
    callback = update.get("callback_query")
    if isinstance(callback, dict):
        message = callback.get("message") or {}
        chat = message.get("chat") or {}
        data = str(callback.get("data") or "")
        if chat.get("id") is None or not callback.get("id"):
            return None
        match = _CALLBACK.match(data)
        name, arg = ("text", None)
        if match:
            name, arg = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), None)
        return Command(
            name,
            str(chat["id"]),
            chat.get("type") == "private",
            arg,
            str(callback["id"]),
            _lang((callback.get("from") or {}).get("language_code")),
        )
    message = update.get("message")
    if not isinstance(message, dict):
        return None
    chat = message.get("chat") or {}
    if chat.get("id") is None:
        return None
    text = str(message.get("text") or "").strip()
    private = chat.get("type") == "private"
    lang = _lang((message.get("from") or {}).get("language_code"))
    start = _START.match(text)
    if start:
        token = start.group(1)
        if token is not None and not _TOKEN.match(token):
            token = "-"  # malformed: answered like an unknown link
        return Command("start", str(chat["id"]), private, token, language=lang)
    command = _COMMAND.match(text)
    return Command(command.group(1) if command else "text", str(chat["id"]), private, language=lang)


def _lang(code: Any) -> str | None:
    if isinstance(code, str) and code[:2].lower() in ("ru", "en"):
        return code[:2].lower()
    return None


def card_caption(
    view: dict[str, Any],
    *,
    merchant: str,
    code: str,
    offers: list[str],
    message: str | None,
    _: Callable[[str], str],
) -> str:
    """The card as the bot shows it under its QR code (at most 1024 characters)."""
    e = html.escape
    lines = [f"<b>{e(merchant)}</b> · {e(view['program_name'])}", f"<code>{e(code)}</code>"]
    if view["program_kind"] == "stamp":
        lines.append(_stamps_line(view, _))
    elif view["program_kind"] == "bonus":
        lines.append(_("Points: {n}").format(n=view["balance"]))
    if view.get("tier"):
        lines.append(_("Level: {tier}").format(tier=e(str(view["tier"]))))
    if view.get("discount_pct"):
        lines.append(_("Discount: {pct}%").format(pct=f"{view['discount_pct']:g}"))
    rewards = view.get("rewards") or []
    if rewards:
        lines.append(_("Rewards:") + " " + ", ".join(e(str(r["name"])) for r in rewards[:5]))
    if view.get("status") != "active":
        lines.append(_("The card is blocked."))
    if message:
        lines += ["", f"<i>{e(message)}</i>"]
    if offers:
        lines += ["", *(f"• {e(o)}" for o in offers[:4])]
    lines += ["", _("Show the QR code or the number at the counter.")]
    text = "\n".join(lines)
    return text if len(text) <= 1024 else text[:1020] + "…"


def _stamps_line(view: dict[str, Any], _: Callable[[str], str]) -> str:
    """ "Stamps: 3 of 5", or each kind of a card with several: "Coffee 3/5 · Pastry 1/4"."""
    if view.get("stamp_kinds"):
        return html.escape(
            " · ".join(f"{k['name']} {k['stamps']}/{k['stamps_to_collect']}" for k in view["stamp_kinds"])
        )
    return _("Stamps: {have} of {need}").format(
        have=view["stamps"], need=view.get("stamps_to_collect") or view["stamps_required"]
    )


def history_text(items: list[dict[str, Any]], *, when: Callable[[str], str], _: Callable[[str], str]) -> str:
    """The card's latest movements (ledger_view items, newest first)."""
    if not items:
        return _("No operations on the card yet.")
    lines = [f"<b>{_('Latest operations')}</b>"]
    for item in items:
        if item.get("points"):
            what = _("Points: {n}").format(n=f"{item['points']:+d}")
        elif item.get("stamps"):
            what = _("Stamps: {n}").format(n=f"{item['stamps']:+d}")
        else:
            continue
        lines.append(f"{html.escape(when(item['created_at']))}  {what}")
    return "\n".join(lines)


def change_text(view: dict[str, Any], *, message: str | None, _: Callable[[str], str]) -> str | None:
    """A notice of a changed card: the new message (campaign, trigger) and/or the figure."""
    parts = []
    if message:
        parts.append(html.escape(message))
    if view["program_kind"] == "stamp":
        parts.append(_stamps_line(view, _))
    elif view["program_kind"] == "bonus":
        parts.append(_("Points: {n}").format(n=view["balance"]))
    return "\n\n".join(parts) if parts else None


def card_keyboard(notify: bool, _: Callable[[str], str]) -> dict[str, Any]:
    return {
        "inline_keyboard": [
            [
                {"text": _("History"), "callback_data": "history"},
                {
                    "text": _("Notifications: on") if notify else _("Notifications: off"),
                    "callback_data": "notify",
                },
            ],
            [{"text": _("Unbind the card"), "callback_data": "unbind"}],
        ]
    }


def confirm_keyboard(start_id: int, _: Callable[[str], str]) -> dict[str, Any]:
    return {
        "inline_keyboard": [
            [
                {"text": _("Yes, show my card here"), "callback_data": f"bind:{start_id}"},
                {"text": _("Cancel"), "callback_data": f"cancel:{start_id}"},
            ]
        ]
    }
