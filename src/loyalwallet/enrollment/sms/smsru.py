"""SMS.ru over its HTTP API: POST {base}/sms/send with api_id, to, msg, json=1.

The answer is JSON: a request-level status_code (100 = accepted) and one entry per
number under "sms" with its own status_code and sms_id. Codes that retrying cannot fix
(a wrong key, a wrong number, anti-spam limits) are permanent; 220 ("service
temporarily unavailable"), HTTP 5xx and network errors are retried by the outbox.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal, InvalidOperation
from typing import Any

import httpx

from loyalwallet.enrollment.sms.base import SmsError, SmsResult

RETRYABLE = {220}


class SmsRuProvider:
    name = "smsru"

    def __init__(
        self, api_id: str, *, base_url: str = "https://sms.ru", timeout: float = 10.0, test: bool = False
    ) -> None:
        if not api_id:
            raise SmsError("LOYALWALLET_SMSRU_API_ID is not set", permanent=True)
        self.api_id = api_id
        self.base_url = base_url.rstrip("/")
        self.test = test
        self.client = httpx.Client(timeout=timeout)

    def send(self, phone: str, text: str, *, sender: str | None = None) -> SmsResult:
        to = phone.lstrip("+")
        form: dict[str, Any] = {"api_id": self.api_id, "to": to, "msg": text, "json": "1"}
        if sender:
            form["from"] = sender
        if self.test:
            form["test"] = "1"
        try:
            response = self.client.post(f"{self.base_url}/sms/send", data=form)
        except httpx.HTTPError as exc:
            raise SmsError(f"SMS.ru unreachable: {exc!r}") from exc
        if response.status_code >= 500:
            raise SmsError(f"SMS.ru answered HTTP {response.status_code}")
        if response.status_code != 200:
            raise SmsError(f"SMS.ru answered HTTP {response.status_code}", permanent=True)
        try:
            body = response.json()
        except ValueError:
            raise SmsError("SMS.ru answered something that is not JSON") from None
        code = _int(body.get("status_code"))
        if body.get("status") != "OK" or code != 100:
            raise SmsError(
                f"SMS.ru refused the request: {code} {body.get('status_text', '')}".strip(),
                permanent=code not in RETRYABLE,
                code=str(code),
                answer=f"{code} {body.get('status_text', '')}".strip(),
            )
        entry = (body.get("sms") or {}).get(to) or {}
        code = _int(entry.get("status_code"))
        if entry.get("status") != "OK" or code != 100:
            raise SmsError(
                f"SMS.ru refused the message: {code} {entry.get('status_text', '')}".strip(),
                permanent=code not in RETRYABLE,
                code=str(code),
                answer=f"{code} {entry.get('status_text', '')}".strip(),
            )
        return SmsResult(self.name, entry.get("sms_id"))

    def cost(self, phones: list[str], text: str) -> dict[str, tuple[int, int] | None]:
        """What sending `text` to each number would cost (sms.ru/api/cost: POST /sms/cost
        with up to 100 numbers in `to`, comma-separated): number -> (messages, cost in
        kopecks), None for a number SMS.ru would refuse. Raises SmsError."""
        out: dict[str, tuple[int, int] | None] = {}
        for i in range(0, len(phones), 100):
            chunk = [p.lstrip("+") for p in phones[i : i + 100]]
            form = {"api_id": self.api_id, "to": ",".join(chunk), "msg": text, "json": "1"}
            try:
                response = self.client.post(f"{self.base_url}/sms/cost", data=form)
            except httpx.HTTPError as exc:
                raise SmsError(f"SMS.ru unreachable: {exc!r}") from exc
            if response.status_code != 200:
                raise SmsError(f"SMS.ru answered HTTP {response.status_code}")
            try:
                body = response.json()
            except ValueError:
                raise SmsError("SMS.ru answered something that is not JSON") from None
            if body.get("status") != "OK":
                code = _int(body.get("status_code"))
                raise SmsError(
                    f"SMS.ru refused the request: {code} {body.get('status_text', '')}".strip(),
                    permanent=code not in RETRYABLE,
                    code=str(code),
                )
            entries = body.get("sms") or {}
            for to in chunk:
                entry = entries.get(to) or {}
                if entry.get("status") != "OK":
                    out["+" + to] = None
                    continue
                try:
                    kopecks = int(
                        (Decimal(str(entry.get("cost") or 0)) * 100).to_integral_value(ROUND_CEILING)
                    )
                    parts = int(entry.get("sms") or 1)
                except (InvalidOperation, ValueError):
                    raise SmsError("SMS.ru answered a cost that is not a number") from None
                out["+" + to] = (parts, kopecks)
        return out

    def balance(self) -> float:
        """The account's balance (sms.ru/api/my_balance); `doctor` uses it to see the key works."""
        try:
            response = self.client.post(
                f"{self.base_url}/my/balance", data={"api_id": self.api_id, "json": "1"}
            )
        except httpx.HTTPError as exc:
            raise SmsError(f"SMS.ru unreachable: {exc!r}") from exc
        if response.status_code != 200:
            raise SmsError(f"SMS.ru answered HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise SmsError("SMS.ru answered something that is not JSON") from None
        if body.get("status") != "OK":
            answer = f"{body.get('status_code')} {body.get('status_text', '')}".strip()
            raise SmsError(f"SMS.ru refused the key: {answer}", answer=answer)
        return float(body.get("balance") or 0)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
