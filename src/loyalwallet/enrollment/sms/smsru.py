"""SMS.ru over its HTTP API: POST {base}/sms/send with api_id, to, msg, json=1.

The answer is JSON: a request-level status_code (100 = accepted) and one entry per
number under "sms" with its own status_code and sms_id. Codes that retrying cannot fix
(a wrong key, a wrong number, anti-spam limits) are permanent; 220 ("service
temporarily unavailable"), HTTP 5xx and network errors are retried by the outbox.
"""

from __future__ import annotations

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
