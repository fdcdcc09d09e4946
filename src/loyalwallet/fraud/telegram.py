"""A Telegram Bot API client over HTTPS (httpx), base URL configurable
(LOYALWALLET_TELEGRAM_API_URL) so tests run it against a local fake: the owner's alerts
(sendMessage, getMe, getUpdates) and the guests' bot (sendPhoto as multipart/form-data,
inline keyboards, answerCallbackQuery, setWebhook/deleteWebhook). One client for both.

Errors are sorted for the outbox: 429 (with retry_after) and 5xx/network errors are
worth retrying; 400/401/403/404 (bad token, chat not found, bot blocked) are not.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

import httpx

from loyalwallet.config import env

_client: httpx.Client | None = None
_lock = threading.Lock()


def api_url() -> str:
    return (env("TELEGRAM_API_URL", "https://api.telegram.org") or "").rstrip("/")


def _http() -> httpx.Client:
    global _client
    with _lock:
        if _client is None:
            _client = httpx.Client(timeout=httpx.Timeout(15.0, connect=5.0))
        return _client


@dataclass
class TelegramError(Exception):
    status: int | None
    description: str
    retry_after: float | None = None

    @property
    def permanent(self) -> bool:
        return self.status is not None and self.status in (400, 401, 403, 404)

    def __str__(self) -> str:
        return f"telegram {self.status}: {self.description}"


def call(
    token: str,
    method: str,
    payload: dict[str, Any] | None = None,
    *,
    files: dict[str, tuple[str, bytes, str]] | None = None,
) -> Any:
    """POST /bot<token>/<method>; returns `result` or raises TelegramError. With `files`
    the call is multipart/form-data (a file upload): the other fields go as form fields,
    objects (reply_markup) JSON-encoded, as the Bot API asks."""
    url = f"{api_url()}/bot{token}/{method}"
    try:
        if files:
            data = {
                k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
                for k, v in (payload or {}).items()
            }
            response = _http().post(url, data=data, files=files)
        else:
            response = _http().post(url, json=payload or {})
    except httpx.HTTPError as exc:
        raise TelegramError(None, f"{type(exc).__name__}: {exc}"[:300]) from exc
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code == 200 and body.get("ok"):
        return body.get("result")
    params = body.get("parameters") or {}
    retry_after = params.get("retry_after")
    raise TelegramError(
        body.get("error_code") or response.status_code,
        str(body.get("description") or response.text[:200]),
        float(retry_after) if retry_after is not None else None,
    )


def send_message(
    token: str, chat_id: str, text: str, *, reply_markup: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Send an HTML-formatted message (callers escape what they insert)."""
    payload: dict[str, Any] = {
        "chat_id": chat_id,
        "text": text[:4096],
        "parse_mode": "HTML",
        "disable_web_page_preview": True,
    }
    if reply_markup:
        payload["reply_markup"] = reply_markup
    return dict(call(token, "sendMessage", payload) or {})


def send_photo(
    token: str,
    chat_id: str,
    png: bytes,
    caption: str,
    *,
    reply_markup: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Upload a PNG with an HTML caption (at most 1024 characters, as Telegram allows)."""
    payload: dict[str, Any] = {"chat_id": chat_id, "caption": caption[:1024], "parse_mode": "HTML"}
    if reply_markup:
        payload["reply_markup"] = reply_markup
    return dict(call(token, "sendPhoto", payload, files={"photo": ("card.png", png, "image/png")}) or {})


def answer_callback_query(token: str, callback_query_id: str, text: str | None = None) -> None:
    payload: dict[str, Any] = {"callback_query_id": callback_query_id}
    if text:
        payload["text"] = text[:200]
    call(token, "answerCallbackQuery", payload)


ALLOWED_UPDATES = ["message", "callback_query"]


def set_webhook(token: str, url: str, secret_token: str) -> None:
    """Telegram then POSTs each update to `url` with the header
    X-Telegram-Bot-Api-Secret-Token: <secret_token> (1-256 characters A-Z a-z 0-9 _ -)."""
    call(token, "setWebhook", {"url": url, "secret_token": secret_token, "allowed_updates": ALLOWED_UPDATES})


def delete_webhook(token: str) -> None:
    """Back to getUpdates (which Telegram refuses while a webhook is set)."""
    call(token, "deleteWebhook", {"drop_pending_updates": False})


def get_me(token: str) -> dict[str, Any]:
    return dict(call(token, "getMe") or {})
