"""A fake Telegram Bot API on 127.0.0.1: sendMessage, sendPhoto (multipart/form-data
upload), answerCallbackQuery, getMe, getUpdates, setWebhook and deleteWebhook, with the
real answer shapes ({"ok": true, "result": ...} / {"ok": false, "error_code",
"description", "parameters": {"retry_after"}}), a known token, known chats, a switch to
answer 429 Too Many Requests once, `blocked` chats (403 "Forbidden: bot was blocked by
the user"), and `user_sends` / `user_presses` to play a person writing to the bot or
pressing an inline button (the update waits in getUpdates until an `offset` past it
confirms it, as Telegram does; getUpdates answers 409 while a webhook is set).

Checked as https://core.telegram.org/bots/api describes them: sendPhoto's photo is an
uploaded file, caption at most 1024 characters, reply_markup a JSON-serialised
InlineKeyboardMarkup whose callback_data is 1-64 bytes; setWebhook's secret_token is 1-256
characters of A-Z, a-z, 0-9, _ and -."""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from fakes.http_target import FakeTarget, Recorded, Reply

TOKEN = "123456789:AAExampleExampleExampleExample_0123"


@dataclass
class FakeTelegram:
    token: str = TOKEN
    chats: set[str] = field(default_factory=lambda: {"5550001", "-1001234567890"})
    sent: list[dict[str, Any]] = field(default_factory=list)
    throttle_next: int = 0  # answer this many sendMessage calls with 429
    username: str = "cafe_bot"
    updates: list[dict[str, Any]] = field(default_factory=list)  # not yet confirmed
    blocked: set[str] = field(default_factory=set)  # chats whose user blocked the bot
    photos: list[dict[str, Any]] = field(default_factory=list)  # sendPhoto calls (fields + "png")
    answered: list[str] = field(default_factory=list)  # callback_query ids answered
    webhook: dict[str, Any] | None = None  # the setWebhook call in force
    _next_update: int = 700000
    _target: FakeTarget | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._target is not None
        return self._target.url

    def start(self) -> FakeTelegram:
        self._target = FakeTarget(respond=self._respond).start()
        return self

    def calls(self, method: str, token: str) -> int:
        """How many times `method` was called with `token` (a revoked one included)."""
        assert self._target is not None
        return sum(1 for r in self._target.received() if r.path == f"/bot{token}/{method}")

    def stop(self) -> None:
        if self._target is not None:
            self._target.stop()

    def user_sends(self, chat_id: int, text: str) -> None:
        """A person in a private chat writes `text` to the bot (/start <code> for a deep link)."""
        with self._lock:
            self._next_update += 1
            self.chats.add(str(chat_id))
            self.updates.append(
                {
                    "update_id": self._next_update,
                    "message": {
                        "message_id": self._next_update,
                        "date": int(time.time()),
                        "from": {"id": chat_id, "is_bot": False, "first_name": "Owner"},
                        "chat": {"id": chat_id, "type": "private", "first_name": "Owner"},
                        "text": text,
                    },
                }
            )

    def user_presses(self, chat_id: int, data: str, *, language_code: str = "ru") -> None:
        """A person presses an inline button whose callback_data is `data`."""
        with self._lock:
            self._next_update += 1
            self.updates.append(
                {
                    "update_id": self._next_update,
                    "callback_query": {
                        "id": f"cb{self._next_update}",
                        "from": {
                            "id": chat_id,
                            "is_bot": False,
                            "first_name": "Guest",
                            "language_code": language_code,
                        },
                        "message": {
                            "message_id": 1,
                            "date": int(time.time()),
                            "chat": {"id": chat_id, "type": "private", "first_name": "Guest"},
                        },
                        "chat_instance": "1",
                        "data": data,
                    },
                }
            )

    def _get_updates(self, body: dict[str, Any]) -> Reply:
        if self.webhook is not None:
            return self._error(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
            )
        offset, limit = body.get("offset"), int(body.get("limit") or 100)
        with self._lock:
            if offset is not None:  # confirms every update before it
                self.updates = [u for u in self.updates if u["update_id"] >= int(offset)]
            result = self.updates[:limit]
        return self._answer(200, {"ok": True, "result": result})

    @staticmethod
    def _answer(status: int, body: dict[str, Any]) -> Reply:
        return status, {"Content-Type": "application/json"}, json.dumps(body).encode()

    def _error(self, code: int, description: str, **params: Any) -> Reply:
        body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
        if params:
            body["parameters"] = params
        return self._answer(code, body)

    def _respond(self, req: Recorded) -> Reply:
        match = re.fullmatch(r"/bot([^/]+)/(\w+)", req.path)
        if req.method != "POST" or not match:
            return self._error(404, "Not Found")
        token, method = match.groups()
        if token != self.token:
            return self._error(401, "Unauthorized")
        if method == "getMe":
            return self._answer(
                200, {"ok": True, "result": {"id": 123456789, "is_bot": True, "username": self.username}}
            )
        if method == "getUpdates":
            return self._get_updates(req.json() if req.body else {})
        if method == "setWebhook":
            return self._set_webhook(req.json())
        if method == "deleteWebhook":
            self.webhook = None
            return self._answer(200, {"ok": True, "result": True, "description": "Webhook was deleted"})
        if method == "answerCallbackQuery":
            body = req.json()
            if not body.get("callback_query_id"):
                return self._error(
                    400, "Bad Request: query is too old and response timeout expired or query ID is invalid"
                )
            self.answered.append(str(body["callback_query_id"]))
            return self._answer(200, {"ok": True, "result": True})
        if method == "sendPhoto":
            return self._send_photo(req)
        if method != "sendMessage":
            return self._error(404, "Not Found: method not found")
        body = req.json()
        problem = _markup_problem(body.get("reply_markup"))
        if problem:
            return self._error(400, problem)
        with self._lock:
            if self.throttle_next > 0:
                self.throttle_next -= 1
                return self._error(429, "Too Many Requests: retry after 7", retry_after=7)
        chat = str(body.get("chat_id"))
        if chat in self.blocked:
            return self._error(403, "Forbidden: bot was blocked by the user")
        if chat not in self.chats:
            return self._error(400, "Bad Request: chat not found")
        if not body.get("text"):
            return self._error(400, "Bad Request: message text is empty")
        with self._lock:
            self.sent.append(body)
            message_id = len(self.sent)
        return self._answer(
            200,
            {
                "ok": True,
                "result": {"message_id": message_id, "chat": {"id": int(chat)}, "text": body["text"]},
            },
        )

    def _set_webhook(self, body: dict[str, Any]) -> Reply:
        url, secret = str(body.get("url") or ""), body.get("secret_token")
        if not url.startswith("https://"):
            return self._error(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            return self._error(400, "Bad Request: secret token contains unallowed characters")
        self.webhook = body
        return self._answer(200, {"ok": True, "result": True, "description": "Webhook was set"})

    def _send_photo(self, req: Recorded) -> Reply:
        kind = req.headers.get("content-type", "")
        if not kind.startswith("multipart/form-data"):
            return self._error(400, "Bad Request: there is no photo in the request")
        parsed = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {kind}\r\n\r\n".encode() + req.body)
        fields: dict[str, Any] = {}
        for part in parsed.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if part.get_filename():
                fields[str(name)] = part.get_payload(decode=True)
            else:
                fields[str(name)] = part.get_content()
        png = fields.get("photo")
        if not isinstance(png, bytes) or not png.startswith(b"\x89PNG\r\n\x1a\n"):
            return self._error(400, "Bad Request: wrong file identifier/HTTP URL specified")
        if len(str(fields.get("caption") or "")) > 1024:
            return self._error(400, "Bad Request: message caption is too long")
        markup = json.loads(fields["reply_markup"]) if fields.get("reply_markup") else None
        problem = _markup_problem(markup)
        if problem:
            return self._error(400, problem)
        chat = str(fields.get("chat_id"))
        if chat in self.blocked:
            return self._error(403, "Forbidden: bot was blocked by the user")
        if chat not in self.chats:
            return self._error(400, "Bad Request: chat not found")
        with self._lock:
            self.photos.append(
                {**{k: v for k, v in fields.items() if k != "photo"}, "png": png, "reply_markup": markup}
            )
            message_id = len(self.sent) + len(self.photos)
        return self._answer(
            200, {"ok": True, "result": {"message_id": message_id, "chat": {"id": int(chat)}}}
        )


def _markup_problem(markup: Any) -> str | None:
    """An InlineKeyboardMarkup as the Bot API describes it, or what is wrong with it."""
    if markup is None:
        return None
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    if not isinstance(rows, list):
        return "Bad Request: can't parse reply keyboard markup JSON object"
    for row in rows:
        for button in row:
            data = button.get("callback_data")
            if not button.get("text") or (data is not None and not 1 <= len(str(data).encode()) <= 64):
                return "Bad Request: BUTTON_DATA_INVALID"
    return None
