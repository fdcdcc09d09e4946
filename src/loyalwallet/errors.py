"""Domain errors with stable codes. The API turns them into problem+json (RFC 9457).

Pure rules and services raise these; they know nothing of HTTP beyond the status each
code maps to, which lives here so the mapping is in one place.
"""

from __future__ import annotations

from typing import Any

# code -> (HTTP status, title)
CODES: dict[str, tuple[int, str]] = {
    "unauthorized": (401, "Missing or invalid credentials"),
    "forbidden": (403, "Not allowed for this role"),
    "not_found": (404, "Not found"),
    "validation_error": (422, "The request is not valid"),
    "bad_request": (400, "The request cannot be read"),
    "method_not_allowed": (405, "Method not allowed"),
    "internal_error": (500, "Internal error"),
    "unavailable": (503, "Temporarily unavailable"),
    "insufficient_points": (422, "Not enough points on the card"),
    "redeem_limit_exceeded": (422, "Points may pay only part of this check"),
    "idempotency_conflict": (409, "This Idempotency-Key was used with another request"),
    "idempotency_key_required": (428, "An Idempotency-Key header is required"),
    "refund_exceeds_purchase": (422, "The refund is larger than what is left of the purchase"),
    "card_blocked": (409, "The card is blocked"),
    "fraud_limit": (429, "Blocked by an anti-fraud rule"),
    "coupon_invalid": (422, "The coupon cannot be used"),
    "conflict": (409, "Conflict with the current state"),
    "program_archived": (409, "The program is archived"),
    "rate_limited": (429, "Too many requests"),
    # Enrollment (join pages, one-time SMS codes).
    "consent_required": (422, "Consent to the processing of personal data is required"),
    "otp_invalid": (422, "The code is wrong"),
    "otp_expired": (410, "The code has expired"),
    "otp_attempts_exceeded": (429, "Too many wrong codes"),
    "certificate_invalid": (422, "The certificate cannot be used"),
    # Campaigns and coupons.
    "segment_empty": (422, "The segment reaches no guest"),
    "offer_exhausted": (409, "The offer has no coupons left to issue"),
    # Trigger times: a time that is not HH:MM; a happy hour that starts when it ends.
    "invalid_time": (422, "Not a time of day (HH:MM, 00:00-23:59)"),
    "empty_window": (422, "The time window starts when it ends"),
    "trigger_archived": (409, "The trigger is archived"),
    # Webhook URLs (the SSRF guard).
    "webhook_url_insecure": (422, "The webhook URL must use https"),
    "webhook_url_forbidden": (422, "The webhook URL points to a non-public address"),
    "webhook_url_unresolvable": (422, "The webhook URL's host does not resolve"),
    # Linking the owner's Telegram chat.
    "telegram_not_configured": (409, "No Telegram bot is set up"),
    "telegram_unavailable": (502, "The Telegram Bot API did not answer as expected"),
    "telegram_token_invalid": (422, "Telegram does not accept this bot token"),
    "telegram_link_missing": (409, "No Telegram link was started"),
    # iiko (integrations/iiko): the connection and joining an iiko programme.
    "iiko_not_connected": (409, "iiko is not connected for this merchant"),
    "iiko_login_invalid": (422, "iiko does not accept this API login"),
    "iiko_organization_unknown": (422, "This API login has no such iiko organisation"),
    "iiko_unavailable": (502, "iikoCloud did not answer as expected"),
    "iiko_card_range_exhausted": (409, "The reserved iiko card-number range is used up"),
    "iiko_phone_rejected": (422, "iiko rejected the phone number"),
    # Gift certificates with a balance (a foreign one is not_found).
    "certificate_insufficient": (422, "Not enough money on the gift certificate"),
    "certificate_expired": (422, "The gift certificate has expired"),
    "certificate_unavailable": (409, "The gift certificate was cancelled"),
    # Prepaid subscriptions (another merchant's is not_found).
    "subscription_expired": (422, "The subscription has ended"),
    "subscription_used_up": (422, "No units are left on the subscription"),
    "subscription_daily_limit": (422, "The subscription was already used as often as allowed today"),
    "subscription_foreign": (422, "The subscription belongs to another card"),
    "subscription_not_covered": (422, "The subscription covers none of the check's items"),
    "subscription_unavailable": (409, "The subscription was refunded"),
    "subscription_active": (409, "The card already has this subscription running"),
    "subscription_refund_too_large": (422, "The refund is larger than what was paid"),
    # Visit feedback and sending the card to its guest.
    "feedback_closed": (410, "This visit can no longer be rated"),
    "channel_unavailable": (409, "The guest cannot be reached on this channel"),
    "email_bounced": (409, "The guest's e-mail address bounced; it is not mailed again"),
    "sms_unavailable": (502, "The SMS provider did not answer as expected"),
    # Hardening (issue 13): bodies over the cap, images too big to draw.
    "payload_too_large": (413, "The request body is too large"),
    "image_too_large": (422, "The image is too large"),
}


class DomainError(Exception):
    """An error a client can act on. `code` is stable; `detail` is for humans."""

    def __init__(self, code: str, detail: str | None = None, **extra: Any) -> None:
        if code not in CODES:
            raise ValueError(f"unknown error code {code!r}")
        self.code = code
        self.status, self.title = CODES[code]
        self.detail = detail or self.title
        self.extra = extra
        super().__init__(f"{code}: {self.detail}")

    def problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"https://loyalwallet.dev/problems/{self.code.replace('_', '-')}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        body.update(self.extra)
        return body


def not_found(what: str) -> DomainError:
    """`what` is the thing's English name: a page shows it translated too."""
    return Explained("not_found", "{what} not found", what=Term(what))


class Term(str):
    """A value of an Explained that is itself an English msgid (a thing's name): a page
    translates it with the template."""


class Explained(DomainError):
    """A DomainError whose detail is an English template with values, so a page can show
    it in the reader's language: `translated(exc, _)`. The API and the CLI see the
    filled-in English `detail` as with any DomainError; `extra` adds members to the API's
    problem body as DomainError's keywords do."""

    def __init__(
        self, code: str, template: str, /, *, extra: dict[str, Any] | None = None, **values: Any
    ) -> None:
        super().__init__(code, template.format(**values) if values else template, **(extra or {}))
        self.template = template
        self.values = values


def translated(exc: DomainError, gettext: Any) -> str:
    """The error's message through `gettext` (the filled-in template of an Explained)."""
    if isinstance(exc, Explained):
        try:
            values = {k: str(gettext(v)) if isinstance(v, Term) else v for k, v in exc.values.items()}
            return str(gettext(exc.template)).format(**values)
        except (KeyError, IndexError, ValueError):
            return exc.detail
    return str(gettext(exc.detail))
