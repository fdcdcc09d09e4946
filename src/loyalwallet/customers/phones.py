"""Phone numbers in any common format -> E.164, the only form stored and indexed."""

from __future__ import annotations

import phonenumbers

from loyalwallet.errors import DomainError, Explained


def to_e164(raw: str, region: str = "RU") -> str:
    """'8 (916) 123-45-67', '+7 916 1234567', '9161234567' -> '+79161234567'.

    Raises DomainError(validation_error) for anything that is not a valid number.
    """
    text = (raw or "").strip()
    if not text or len(text) > 32:
        raise DomainError("validation_error", "phone is not a valid phone number", field="phone")
    # Russian habit: a leading 8 instead of +7 (8 916 ...); phonenumbers handles it for RU.
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise Explained(
            "validation_error", "{raw!r} is not a phone number", raw=raw, extra={"field": "phone"}
        ) from None
    if not phonenumbers.is_valid_number(number):
        raise Explained(
            "validation_error", "{raw!r} is not a valid phone number", raw=raw, extra={"field": "phone"}
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask(e164: str) -> str:
    """+79161234567 -> +7 *** ***-45-67: enough for a barista to confirm, no more."""
    return f"{e164[:-10]} *** ***-{e164[-4:-2]}-{e164[-2:]}" if len(e164) >= 11 else "***"
