"""A local fake of SMS.ru's HTTP API (POST /sms/send, POST /sms/cost, POST /my/balance,
GET or POST /sms/status), on 127.0.0.1 in a thread, and its callback.

/sms/status answers as sms.ru/api/status describes: `sms_id` is a comma-separated list;
per id {"status": "OK", "status_code": <the message's status>, "cost", "status_text"}, or
{"status": "ERROR", "status_code": -1} for an id it never gave. A sent message is 102
("on its way") until a test sets its status (`set_status`). `report(url, ...)` calls
a callback as sms.ru/api/callback describes: POST form fields `data[]`, each
"sms_status\n<sms_id>\n<code>\n<unix time>", and checks the answer is "100".

/sms/cost answers as sms.ru/api/cost describes: per number {"status", "status_code",
"cost", "sms"} (the parts: 70 characters a part for Cyrillic, 160 for Latin text, 67/153
when split), "total_cost" and "total_sms"; a number that is not a Russian mobile one is
refused with status_code 202. The fake's price is PRICE rubles a part.

It answers like the real service (JSON with a request status_code and one entry per
number) and records what it received, so tests read the SMS a guest would get.
Scripted answers: `fail_next(status_code=...)` for a refusal, `http_error_next(500)`.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_ID = "TEST-API-ID-0000"
PRICE = "3.45"  # rubles per part, as a string (SMS.ru's JSON gives costs as numbers or strings)


def parts(text: str) -> int:
    """How many SMS parts `text` takes (GSM 7-bit: 160 / 153; UCS-2: 70 / 67)."""
    single, multi = (160, 153) if all(ord(c) < 128 for c in text) else (70, 67)
    return 1 if len(text) <= single else -(-len(text) // multi)


@dataclass
class Received:
    to: str
    msg: str
    sender: str | None
    form: dict[str, str]
    sms_id: str | None = None


@dataclass
class FakeSmsRu:
    server: ThreadingHTTPServer
    thread: threading.Thread
    received: list[Received] = field(default_factory=list)
    cost_requests: list[dict[str, str]] = field(default_factory=list)
    script: deque[tuple[str, Any]] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: dict[str, int] = field(default_factory=dict)
    # ids unique across runs against a kept database, like the real service's
    prefix: str = field(default_factory=lambda: f"{__import__('secrets').randbelow(10**6):06d}")
    status_requests: list[dict[str, str]] = field(default_factory=list)

    def set_status(self, sms_id: str, code: int) -> None:
        with self.lock:
            self.statuses[sms_id] = code

    def report(self, url: str, items: list[tuple[str, int]]) -> str:
        """Call a callback the way SMS.ru does; returns its answer's text (must be "100")."""
        import time
        import urllib.request

        body = urllib.parse.urlencode(
            [("data[]", f"sms_status\n{sms_id}\n{code}\n{int(time.time())}") for sms_id, code in items]
        ).encode()
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.read().decode()
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def fail_next(self, status_code: int, text: str = "error", *, per_number: bool = False) -> None:
        self.script.append(("number" if per_number else "request", (status_code, text)))

    def http_error_next(self, status: int) -> None:
        self.script.append(("http", status))

    def last_to(self, phone: str) -> Received | None:
        to = phone.lstrip("+")
        with self.lock:
            return next((r for r in reversed(self.received) if r.to == to), None)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start() -> FakeSmsRu:
    fake: FakeSmsRu

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def _answer(self, status: int, body: dict[str, Any] | str) -> None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _cost(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
            if form.get("api_id") != API_ID:
                self._answer(
                    200, {"status": "ERROR", "status_code": 200, "status_text": "Неправильный api_id"}
                )
                return
            numbers = [n for n in form.get("to", "").split(",") if n]
            if not numbers or len(numbers) > 100 or not form.get("msg"):
                self._answer(
                    200,
                    {"status": "ERROR", "status_code": 202, "status_text": "Неправильно указан получатель"},
                )
                return
            with fake.lock:
                fake.cost_requests.append(form)
            n = parts(form["msg"])
            sms: dict[str, Any] = {}
            total_cost, total_sms = 0.0, 0
            for number in numbers:
                if len(number) == 11 and number.startswith("79") and number.isdigit():
                    cost = round(float(PRICE) * n, 2)
                    sms[number] = {"status": "OK", "status_code": 100, "cost": f"{cost:.2f}", "sms": n}
                    total_cost, total_sms = total_cost + cost, total_sms + n
                else:
                    sms[number] = {
                        "status": "ERROR",
                        "status_code": 202,
                        "status_text": "Неправильно указан номер",
                    }
            self._answer(
                200,
                {
                    "status": "OK",
                    "status_code": 100,
                    "sms": sms,
                    "total_cost": round(total_cost, 2),
                    "total_sms": total_sms,
                },
            )

        def _status(self, form: dict[str, str]) -> None:
            if form.get("api_id") != API_ID:
                self._answer(
                    200, {"status": "ERROR", "status_code": 200, "status_text": "Неправильный api_id"}
                )
                return
            ids = [i for i in form.get("sms_id", "").split(",") if i]
            if not ids or len(ids) > 100 or form.get("json") != "1":
                self._answer(200, {"status": "ERROR", "status_code": 202, "status_text": "bad sms_id"})
                return
            with fake.lock:
                fake.status_requests.append(form)
                known = {r.sms_id for r in fake.received}
                out: dict[str, Any] = {}
                for sms_id in ids:
                    if sms_id not in known:
                        out[sms_id] = {"status": "ERROR", "status_code": -1, "status_text": "Не найдено"}
                    else:
                        code = fake.statuses.get(sms_id, 102)
                        out[sms_id] = {"status": "OK", "status_code": code, "cost": PRICE, "status_text": ""}
            self._answer(200, {"status": "OK", "status_code": 100, "sms": out, "balance": 100.5})

        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            if path != "/sms/status":
                self._answer(404, {"status": "ERROR", "status_code": 211, "status_text": "method not found"})
                return
            self._status(dict(urllib.parse.parse_qsl(query)))

        def do_POST(self) -> None:
            if self.path.split("?")[0] == "/sms/status":
                length = int(self.headers.get("Content-Length", "0"))
                self._status(dict(urllib.parse.parse_qsl(self.rfile.read(length).decode())))
                return
            if self.path.split("?")[0] == "/my/balance":  # sms.ru/api/my_balance
                length = int(self.headers.get("Content-Length", "0"))
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                if form.get("api_id") != API_ID:
                    self._answer(
                        200, {"status": "ERROR", "status_code": 200, "status_text": "Неправильный api_id"}
                    )
                else:
                    self._answer(200, {"status": "OK", "status_code": 100, "balance": 100.5})
                return
            if self.path.split("?")[0] == "/sms/cost":
                self._cost()
                return
            if self.path.split("?")[0] != "/sms/send":
                self._answer(404, {"status": "ERROR", "status_code": 211, "status_text": "method not found"})
                return
            length = int(self.headers.get("Content-Length", "0"))
            form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
            if form.get("api_id") != API_ID:
                self._answer(
                    200, {"status": "ERROR", "status_code": 200, "status_text": "Неправильный api_id"}
                )
                return
            step = fake.script.popleft() if fake.script else None
            if step and step[0] == "http":
                self._answer(int(step[1]), "Internal Server Error")
                return
            if step and step[0] == "request":
                code, text = step[1]
                self._answer(200, {"status": "ERROR", "status_code": code, "status_text": text})
                return
            to = form.get("to", "")
            if step and step[0] == "number":
                code, text = step[1]
                entry = {"status": "ERROR", "status_code": code, "status_text": text}
            else:
                with fake.lock:
                    n = len(fake.received) + 1
                    sms_id = f"000000-{fake.prefix}{n:06d}"
                    fake.received.append(Received(to, form.get("msg", ""), form.get("from"), form, sms_id))
                entry = {"status": "OK", "status_code": 100, "sms_id": sms_id}
            self._answer(200, {"status": "OK", "status_code": 100, "sms": {to: entry}, "balance": 100.5})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    fake = FakeSmsRu(server=server, thread=thread)
    thread.start()
    return fake
