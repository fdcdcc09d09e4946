"""A Telegram Bot API client: sendMessage and getMe over HTTPS (httpx), base URL
configurable (LOYALWALLET_TELEGRAM_API_URL) so tests run it against a local fake.

Errors are sorted for the outbox: 429 (with retry_after) and 5xx/network errors are
worth retrying; 400/401/403/404 (bad token, chat not found, bot blocked) are not.
"""

from __future__ import annotations

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


def call(token: str, method: str, payload: dict[str, Any] | None = None) -> Any:
    """POST /bot<token>/<method>; returns `result` or raises TelegramError."""
    url = f"{api_url()}/bot{token}/{method}"
    try:
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


def send_message(token: str, chat_id: str, text: str) -> dict[str, Any]:
    """Send an HTML-formatted message (callers escape what they insert)."""
    result = call(
        token,
        "sendMessage",
        {"chat_id": chat_id, "text": text[:4096], "parse_mode": "HTML", "disable_web_page_preview": True},
    )
    return dict(result or {})


def get_me(token: str) -> dict[str, Any]:
    return dict(call(token, "getMe") or {})
