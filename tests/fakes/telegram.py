"""A fake Telegram Bot API on 127.0.0.1: sendMessage, getMe and getUpdates, with the real
answer shapes ({"ok": true, "result": ...} / {"ok": false, "error_code", "description",
"parameters": {"retry_after"}}), a known token, known chats, a switch to answer 429 Too
Many Requests once, and `user_sends` to play a person writing to the bot (the update
waits in getUpdates until an `offset` past it confirms it, as Telegram does)."""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
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

    def _get_updates(self, body: dict[str, Any]) -> Reply:
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
        if method != "sendMessage":
            return self._error(404, "Not Found: method not found")
        body = req.json()
        with self._lock:
            if self.throttle_next > 0:
                self.throttle_next -= 1
                return self._error(429, "Too Many Requests: retry after 7", retry_after=7)
        chat = str(body.get("chat_id"))
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
