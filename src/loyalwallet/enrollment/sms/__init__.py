"""SMS: a provider interface, the console provider for development, SMS.ru for real.

Texts are sent through the outbox (topic "sms"), never from the request: the phone and
the text travel sealed (AES-GCM) in the outbox row, and a message that would arrive too
late to matter (an expired one-time code) is dropped instead of sent.

Settings: each merchant's choice on the SMS page (settings.py), else the environment:
LOYALWALLET_SMS_PROVIDER = console (default) | smsru; LOYALWALLET_SMSRU_API_ID,
LOYALWALLET_SMSRU_BASE_URL (default https://sms.ru), LOYALWALLET_SMSRU_TEST=1 (SMS.ru's
free test mode), LOYALWALLET_SMS_SENDER (an approved sender name).
"""

from __future__ import annotations

import base64
import datetime as dt
import threading
from typing import Any

from sqlalchemy.orm import Session

from loyalwallet import crypto
from loyalwallet.config import env
from loyalwallet.enrollment.sms.base import SmsError, SmsProvider, SmsResult
from loyalwallet.enrollment.sms.console import ConsoleProvider
from loyalwallet.enrollment.sms.settings import SmsConfig, config_for, env_config
from loyalwallet.enrollment.sms.smsru import SmsRuProvider
from loyalwallet.merchants.models import Merchant
from loyalwallet.outbox.service import enqueue

__all__ = [
    "SmsError",
    "SmsProvider",
    "SmsResult",
    "build_provider",
    "config_for",
    "get_provider",
    "open_payload",
    "queue_sms",
    "send_test",
]

TOPIC = "sms"
_cache: dict[tuple[str | None, ...], SmsProvider] = {}  # the key holds the api_id: memory only
_lock = threading.Lock()


def provider_name() -> str:
    """The installation's provider (the environment); a merchant may choose its own."""
    return env_config().provider


def get_provider(merchant: Merchant | None = None) -> SmsProvider:
    """The provider of this merchant (its choice on the SMS page, else the environment)."""
    return build_provider(config_for(merchant))


def build_provider(config: SmsConfig) -> SmsProvider:
    """A provider for these settings (built once per distinct settings)."""
    name = config.provider
    key = (name, config.api_id, env("SMSRU_BASE_URL"), env("SMSRU_TEST"))
    with _lock:
        provider = _cache.get(key)
        if provider is None:
            if name == "console":
                provider = ConsoleProvider()
            elif name == "smsru":
                provider = SmsRuProvider(
                    config.api_id or "",
                    base_url=env("SMSRU_BASE_URL", "https://sms.ru") or "https://sms.ru",
                    test=env("SMSRU_TEST", "0") in ("1", "true", "yes"),
                )
            else:
                raise SmsError(f"unknown LOYALWALLET_SMS_PROVIDER {name!r}", permanent=True)
            _cache[key] = provider
    return provider


def send_test(merchant: Merchant, phone: str, text: str) -> dict[str, Any]:
    """Send one text now (not through the outbox) and say what the provider answered."""
    config = config_for(merchant)
    try:
        result = build_provider(config).send(phone, text, sender=config.sender)
    except SmsError as exc:
        return {"ok": False, "provider": config.provider, "answer": exc.answer or str(exc)}
    return {"ok": True, "provider": result.provider, "message_id": result.message_id}


def _seal(merchant_id: int, column: str, value: str) -> str:
    sealed = crypto.seal(value, merchant_id=merchant_id, column=column)
    assert sealed is not None
    return base64.b64encode(sealed).decode()


def queue_sms(
    session: Session,
    merchant_id: int,
    phone: str,
    text: str,
    *,
    not_after: dt.datetime | None = None,
    purpose: str = "otp",
) -> None:
    """Queue a text to an E.164 number in the caller's transaction."""
    enqueue(
        session,
        merchant_id,
        TOPIC,
        {
            "phone": _seal(merchant_id, "sms_phone", phone),
            "text": _seal(merchant_id, "sms_text", text),
            "not_after": not_after.isoformat() if not_after else None,
            "purpose": purpose,
        },
        max_attempts=6,
    )


def open_payload(merchant_id: int, payload: dict[str, str]) -> tuple[str, str]:
    def _open(column: str, value: str) -> str:
        text = crypto.open_(base64.b64decode(value), merchant_id=merchant_id, column=column)
        assert text is not None
        return text

    return _open("sms_phone", payload["phone"]), _open("sms_text", payload["text"])
