"""Which SMS provider a merchant's texts go through.

The owner chooses it on the SMS page (/admin/sms): console or SMS.ru, the API key and the
sender name, kept in the merchant's settings with the key sealed (AES-GCM, bound to the
merchant). Without a choice the installation's environment decides
(LOYALWALLET_SMS_PROVIDER, LOYALWALLET_SMSRU_API_ID, LOYALWALLET_SMS_SENDER); SMS.ru's
address (LOYALWALLET_SMSRU_BASE_URL) and test mode stay installation settings.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from loyalwallet import crypto
from loyalwallet.config import env, is_demo
from loyalwallet.enrollment.sms.base import SmsError
from loyalwallet.enrollment.sms.smsru import SmsRuProvider
from loyalwallet.errors import Explained
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.models import Merchant
from loyalwallet.merchants.service import audit, get_merchant

PROVIDERS = ("console", "smsru")
KEY_COLUMN = "sms_api_id"
# SMS.ru sender names: up to 11 Latin letters, digits and a few signs, approved by SMS.ru.
SENDER = re.compile(r"^[A-Za-z0-9 .\-_]{1,11}$")


@dataclass(frozen=True)
class SmsConfig:
    provider: str
    api_id: str | None = field(repr=False, default=None)
    sender: str | None = None
    source: str = "environment"  # or "merchant": chosen on the SMS page


def _stored(merchant: Merchant | None) -> dict[str, Any]:
    return dict(((merchant.settings or {}) if merchant is not None else {}).get("sms") or {})


def env_config() -> SmsConfig:
    return SmsConfig(
        (env("SMS_PROVIDER", "console") or "console").lower(), env("SMSRU_API_ID"), env("SMS_SENDER")
    )


def config_for(merchant: Merchant | None) -> SmsConfig:
    """The merchant's choice, else the installation's environment."""
    own = _stored(merchant)
    if merchant is None or not own.get("provider"):
        return env_config()
    api_id = None
    if own.get("api_id_enc"):
        api_id = crypto.open_(base64.b64decode(own["api_id_enc"]), merchant_id=merchant.id, column=KEY_COLUMN)
    return SmsConfig(
        str(own["provider"]),
        api_id or env("SMSRU_API_ID"),
        own.get("sender") or env("SMS_SENDER"),
        "merchant",
    )


def view(merchant: Merchant) -> dict[str, Any]:
    """What the SMS page shows (never the key, only whether there is one)."""
    config = config_for(merchant)
    own = _stored(merchant)
    return {
        "provider": config.provider,
        "sender": config.sender,
        "source": config.source,
        "has_key": bool(config.api_id),
        "has_own_key": bool(own.get("api_id_enc")),
        "key_hint": f"…{config.api_id[-4:]}" if config.api_id and len(config.api_id) > 8 else None,
        "console_alarm": console_alarm(merchant),
    }


def console_alarm(merchant: Merchant) -> bool:
    """Codes go to the server console on a real installation: guests get no SMS."""
    provider = _stored(merchant).get("provider") or env_config().provider  # no key opened
    return provider == "console" and not is_demo()


def console_banner(merchant: Merchant, role: str) -> dict[str, Any] | None:
    """The admin's red banner (web.pages.BANNERS) while guests get no SMS."""
    if not console_alarm(merchant):
        return None
    return {
        "id": "sms-console-banner",
        "message": "Guests get no SMS: codes only go to the server console. Choose an SMS provider.",
        "href": "/admin/sms" if role == "owner" else None,
        "link": "Set up SMS",
    }


def set_sms(
    session: Session, actor: Actor, provider: str, api_id: str | None, sender: str | None
) -> Merchant:
    """Store the merchant's provider choice. SMS.ru is asked about a new key first
    (its balance call): a key SMS.ru refuses stores nothing."""
    actor.require("owner")
    provider = (provider or "").strip().lower()
    if provider not in PROVIDERS:
        raise Explained("validation_error", "choose console or SMS.ru")
    sender = (sender or "").strip() or None
    if sender is not None and not SENDER.match(sender):
        raise Explained(
            "validation_error", "the sender name is up to 11 Latin letters and digits, as approved by SMS.ru"
        )
    merchant = get_merchant(session, actor.merchant_id)
    stored = _stored(merchant)
    api_id = (api_id or "").strip() or None
    if provider == "smsru":
        if not (api_id or config_for(merchant).api_id):
            raise Explained("validation_error", "enter the SMS.ru API key (api_id, in your SMS.ru account)")
        if api_id is not None:
            probe = SmsRuProvider(
                api_id, base_url=env("SMSRU_BASE_URL", "https://sms.ru") or "https://sms.ru"
            )
            try:
                probe.balance()
            except SmsError as exc:
                if exc.answer is None:  # no answer at all: not the key's fault
                    raise Explained(
                        "unavailable", "SMS.ru did not answer ({reason}): nothing was saved", reason=str(exc)
                    ) from None
                raise Explained(
                    "validation_error", "SMS.ru did not accept this key: {answer}", answer=exc.answer
                ) from None
            finally:
                probe.client.close()
    new: dict[str, Any] = {"provider": provider, "sender": sender}
    if api_id is not None:
        sealed = crypto.seal(api_id, merchant_id=merchant.id, column=KEY_COLUMN)
        assert sealed is not None
        new["api_id_enc"] = base64.b64encode(sealed).decode()
    elif stored.get("api_id_enc"):
        new["api_id_enc"] = stored["api_id_enc"]
    merchant.settings = {**(merchant.settings or {}), "sms": new}
    audit(
        session,
        actor,
        "sms.settings",
        "merchant",
        merchant.id,
        {"provider": provider, "sender": sender, "new_key": api_id is not None},
    )
    return merchant
