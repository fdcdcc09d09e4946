"""Pure rules of enrollment: one-time codes, rate limits, the join form, offers, referrals.

No database, no web framework: the service feeds these functions what it read and
acts on what they answer, so every rule is tested on its own.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from loyalwallet.customers.phones import to_e164
from loyalwallet.errors import DomainError
from loyalwallet.programs.rules import BonusRules, DiscountRules, Rules, StampRules, stamp_terms
from loyalwallet.text import Message, Plural

# --- one-time codes ----------------------------------------------------------------------

OTP_LENGTH = 6
OTP_TTL = dt.timedelta(minutes=5)
OTP_MAX_ATTEMPTS = 5
RESEND_COOLDOWN = dt.timedelta(seconds=60)


def new_otp() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(OTP_LENGTH))


def otp_hash(key: bytes, token: str, code: str) -> str:
    """Keyed hash of a code, salted by its challenge: a leaked table reveals no code
    (without the server key, 10^6 candidates cannot be tried offline)."""
    return hmac.new(key, f"otp:{token}:{code}".encode(), hashlib.sha256).hexdigest()


def otp_matches(key: bytes, token: str, code: str, stored_hash: str) -> bool:
    code = re.sub(r"\D", "", code or "")
    if len(code) != OTP_LENGTH:
        return False
    return hmac.compare_digest(otp_hash(key, token, code), stored_hash)


# --- rate limits -------------------------------------------------------------------------


@dataclass(frozen=True)
class Limit:
    window: dt.timedelta
    count: int


HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)

# Buckets: an SMS to one phone, SMS asked from one IP, SMS of one merchant (a guard
# against SMS pumping), anonymous invitation cards from one IP.
LIMITS: dict[str, tuple[Limit, ...]] = {
    "sms_phone": (Limit(HOUR, 5), Limit(DAY, 10)),
    "sms_ip": (Limit(HOUR, 20), Limit(DAY, 60)),
    "sms_merchant": (Limit(HOUR, 500),),
    "invite_ip": (Limit(HOUR, 10), Limit(DAY, 30)),
    # Visit feedback: answers (and edits) from one IP, and about one card.
    "feedback_ip": (Limit(HOUR, 30), Limit(DAY, 100)),
    "feedback_card": (Limit(HOUR, 10), Limit(DAY, 20)),
}


def longest_window(limits: Sequence[Limit]) -> dt.timedelta:
    return max(limit.window for limit in limits)


def retry_after(limits: Sequence[Limit], hits: Sequence[dt.datetime], now: dt.datetime) -> int | None:
    """Seconds until one more event is allowed, or None when it is allowed now.
    `hits` are the times of the counted events within the longest window."""
    wait = 0.0
    for limit in limits:
        recent = sorted(t for t in hits if t > now - limit.window)
        if len(recent) >= limit.count:
            # Allowed again when the oldest of the last `count` events leaves the window.
            frees_at = recent[-limit.count] + limit.window
            wait = max(wait, (frees_at - now).total_seconds())
    return max(1, int(wait + 0.999)) if wait > 0 else None


# --- the join form -----------------------------------------------------------------------

FieldKey = Literal["name", "phone", "birthday", "email", "gender", "city", "custom"]
Lang = Literal["ru", "en"]
GENDERS = ("female", "male", "other")
MAX_FIELDS = 6
CUSTOM_ID = r"^[a-z][a-z0-9_]{0,30}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FormField(_Model):
    key: FieldKey
    # Custom fields only: the name under which the answer is stored.
    id: Annotated[str, Field(pattern=CUSTOM_ID)] | None = None
    required: bool = False
    # Custom fields only: the question, per language (built-in fields are translated).
    labels: dict[Lang, Annotated[str, Field(min_length=1, max_length=100)]] = {}
    # Custom fields only: answers to choose from (none = free text).
    options: Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]], Field(max_length=20)] = []

    @model_validator(mode="after")
    def _custom(self) -> FormField:
        if self.key == "custom":
            if not self.id:
                raise ValueError("a custom field needs an id")
            if not self.labels:
                raise ValueError("a custom field needs a label")
        elif self.id or self.options:
            raise ValueError("only custom fields take an id and options")
        if self.key == "phone":
            self.required = True
        return self

    @property
    def name(self) -> str:
        """The name of the form input."""
        return f"custom_{self.id}" if self.key == "custom" else self.key


DEFAULT_FIELDS: list[dict[str, Any]] = [
    {"key": "name", "required": False},
    {"key": "phone", "required": True},
    {"key": "birthday", "required": False},
]


class FormSettings(_Model):
    fields: Annotated[list[FormField], Field(min_length=1, max_length=MAX_FIELDS)] = [
        FormField.model_validate(f) for f in DEFAULT_FIELDS
    ]
    title: Annotated[str, Field(max_length=120)] = ""
    # The promise on the page and the table tent; empty = written from the rules.
    offer: Annotated[str, Field(max_length=300)] = ""
    # Consent wordings; empty = the built-in text in the guest's language.
    personal_data_text: Annotated[str, Field(max_length=5000)] = ""
    marketing_text: Annotated[str, Field(max_length=2000)] = ""
    privacy_url: Annotated[str, Field(pattern=r"^https?://", max_length=500)] | None = None
    ask_marketing: bool = True

    @model_validator(mode="after")
    def _fields(self) -> FormSettings:
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError("each field may appear once")
        if "phone" not in names:
            raise ValueError("the phone field is required: the card is found by phone")
        return self


def parse_form_settings(raw: Mapping[str, Any] | None) -> FormSettings:
    try:
        return FormSettings.model_validate(dict(raw or {}))
    except ValidationError as exc:
        errors = [
            {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        raise DomainError("validation_error", "the join form settings are not valid", errors=errors) from None


def text_version(text: str) -> str:
    """A consent wording's version: it changes whenever a character changes."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# Messages are English msgids; the pages translate them.
ERR_REQUIRED = "Please fill in this field"
ERR_PHONE = "Enter a valid mobile phone number"
ERR_PHONE_REGION = "We can only send SMS to numbers of these countries: %(regions)s"
ERR_DATE = "Enter a date as DD.MM.YYYY"
ERR_DATE_RANGE = "Enter your real date of birth"
ERR_EMAIL = "Enter a valid email address"
ERR_CHOICE = "Choose one of the options"
ERR_TOO_LONG = "This is too long"
ERR_CONSENT = "Please agree to the processing of personal data"

EMAIL_RE = re.compile(r"^[^@\s<>\"']+@[^@\s<>\"']+\.[^@\s<>\"'.]{2,}$")
_SPACES = re.compile(r"\s+")


def clean_text(value: str | None, limit: int) -> tuple[str, bool]:
    """Trimmed single-line text without control or format characters (they hide
    spoofing); returns (text, too_long). Markup is kept as typed: every page escapes it."""
    text = "".join(
        ch for ch in unicodedata.normalize("NFC", value or "") if unicodedata.category(ch)[0] != "C"
    )
    text = _SPACES.sub(" ", text).strip()
    return text, len(text) > limit


def parse_birthday(raw: str, today: dt.date) -> tuple[dt.date | None, str | None]:
    raw = raw.strip()
    date = None
    for fmt in ("%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y"):
        try:
            date = dt.datetime.strptime(raw, fmt).date()
            break
        except ValueError:
            continue
    if date is None:
        return None, ERR_DATE
    if not (dt.date(1900, 1, 1) <= date <= today):
        return None, ERR_DATE_RANGE
    return date, None


@dataclass
class CleanForm:
    phone: str | None = None  # E.164
    name: str | None = None
    birthday: dt.date | None = None
    email: str | None = None
    gender: str | None = None
    city: str | None = None
    custom: dict[str, str] | None = None


def clean_form(
    settings: FormSettings,
    raw: Mapping[str, str],
    *,
    today: dt.date,
    region: str = "RU",
    sms_regions: Sequence[str] | None = None,
) -> tuple[CleanForm, dict[str, str]]:
    """The typed values, normalised, and the errors by input name (English msgids)."""
    out = CleanForm()
    errors: dict[str, str] = {}
    custom: dict[str, str] = {}
    for field in settings.fields:
        value = (raw.get(field.name) or "").strip()
        if not value:
            if field.required:
                errors[field.name] = ERR_REQUIRED
            continue
        if field.key == "phone":
            try:
                out.phone = to_e164(value, region)
            except DomainError:
                errors[field.name] = ERR_PHONE
                continue
            if sms_regions and phone_region(out.phone) not in sms_regions:
                errors[field.name] = ERR_PHONE_REGION
                out.phone = None
        elif field.key == "birthday":
            out.birthday, error = parse_birthday(value, today)
            if error:
                errors[field.name] = error
        elif field.key == "email":
            email, too_long = clean_text(value, 254)
            if too_long or not EMAIL_RE.match(email):
                errors[field.name] = ERR_EMAIL
            else:
                out.email = email.lower()
        elif field.key == "gender":
            if value not in GENDERS:
                errors[field.name] = ERR_CHOICE
            else:
                out.gender = value
        else:
            text, too_long = clean_text(value, 100 if field.key != "custom" else 200)
            if too_long:
                errors[field.name] = ERR_TOO_LONG
            elif field.key == "custom" and field.options and text not in field.options:
                errors[field.name] = ERR_CHOICE
            elif not text and field.required:
                errors[field.name] = ERR_REQUIRED
            elif field.key == "name":
                out.name = text or None
            elif field.key == "city":
                out.city = text or None
            elif text:
                custom[str(field.id)] = text
    out.custom = custom or None
    return out, errors


def phone_region(e164: str) -> str | None:
    import phonenumbers

    return phonenumbers.region_code_for_number(phonenumbers.parse(e164))


# --- what the program offers, in words ---------------------------------------------------


def pct(value: Decimal) -> str:
    """Decimal("5.00") -> "5", Decimal("2.50") -> "2.5"."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def offer_lines(rules: Rules) -> list[tuple[Message, dict[str, Any]]]:
    """The program's promise as (English message, parameters) lines, most enticing first;
    counts are `Plural`s, shown with `text.translate`."""
    lines: list[tuple[Message, dict[str, Any]]] = []
    if isinstance(rules, BonusRules):
        if rules.welcome_points:
            lines.append(
                (
                    Plural("%(points)s welcome point", "%(points)s welcome points", "points"),
                    {"points": rules.welcome_points},
                )
            )
        lines.append(
            ("%(pct)s%% back in points on every purchase", {"pct": pct(rules.tiers[0].cashback_pct)})
        )
        if len(rules.tiers) > 1:
            lines.append(("Up to %(pct)s%% as you spend more", {"pct": pct(rules.tiers[-1].cashback_pct)}))
        if rules.birthday_points:
            lines.append(
                (
                    Plural(
                        "%(points)s point on your birthday", "%(points)s points on your birthday", "points"
                    ),
                    {"points": rules.birthday_points},
                )
            )
        if rules.referral_points:
            lines.append(
                (
                    Plural(
                        "%(points)s point for every friend you bring",
                        "%(points)s points for every friend you bring",
                        "points",
                    ),
                    {"points": rules.referral_points},
                )
            )
    elif isinstance(rules, DiscountRules):
        lines.append(("%(pct)s%% off every purchase", {"pct": pct(rules.tiers[0].discount_pct)}))
        if len(rules.tiers) > 1:
            lines.append(("Up to %(pct)s%% as you spend more", {"pct": pct(rules.tiers[-1].discount_pct)}))
    elif isinstance(rules, StampRules):
        lines.append(stamp_terms(rules))
        if rules.welcome_stamps:
            lines.append(
                (
                    Plural("%(n)s stamp as a welcome gift", "%(n)s stamps as a welcome gift"),
                    {"n": rules.welcome_stamps},
                )
            )
    return lines


# --- devices -----------------------------------------------------------------------------


def platform(user_agent: str | None) -> str:
    """Which wallet button to offer first: ios (Apple Wallet), android (Google Wallet)
    or desktop (both, and a QR to open the card on a phone)."""
    ua = user_agent or ""
    if re.search(r"iPhone|iPad|iPod", ua):
        return "ios"
    if "Android" in ua:
        return "android"
    # iPadOS Safari says "Macintosh"; a Mac's Safari adds passes too.
    if "Macintosh" in ua and "Safari" in ua and not re.search(r"Chrome|Chromium|Firefox|Edg/", ua):
        return "ios"
    return "desktop"


# --- channels ----------------------------------------------------------------------------

# kind -> (utm_source, utm_medium) written into the channel's link by default.
CHANNEL_KINDS: dict[str, tuple[str | None, str | None]] = {
    "counter_qr": ("counter", "qr"),
    "table_tent": ("table_tent", "print"),
    "website_widget": ("website", "widget"),
    "instagram": ("instagram", "social"),
    "mailing": ("mailing", "email"),
    "other": (None, None),
}
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,39}$")
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")


def utm_value(raw: str | None) -> str | None:
    """A UTM tag as stored: printable, at most 100 characters, or None."""
    text, _ = clean_text(raw, 100)
    return text[:100] or None


def card_channel(
    channel_slug: str | None, utm_source: str | None, referred: bool, fallback: str = "join_page"
) -> str:
    """What cards.channel records for a join."""
    if channel_slug:
        return channel_slug
    if referred:
        return "referral"
    if utm_source:
        return utm_source[:64]
    return fallback


# --- referrals ---------------------------------------------------------------------------

REFERRALS_PER_IP_PER_DAY = 2
REFERRALS_PER_MONTH = 20


@dataclass(frozen=True)
class ReferralFacts:
    referrer_usable: bool  # an active, named card of the same program that pays referrals
    friend_is_new: bool  # the join made a new card (not the guest's existing one)
    same_customer: bool  # the friend is the referrer (same phone)
    same_device: bool  # the join came from the device the referrer joined on
    same_ip_last_day: int  # referred joins of this referrer from this IP in the last day
    last_month: int  # referred joins of this referrer in the last 30 days


def referral_verdict(facts: ReferralFacts) -> str:
    """ "accepted", or "rejected:<reason>". Referral points are paid on the friend's first
    purchase (checkout), once per friend card; this decides whether the link counts.
    A shared IP alone is no proof (café Wi-Fi, mobile carriers' NAT), so it only caps
    how many friends may come from one address a day."""
    if not facts.referrer_usable:
        return "rejected:referrer"
    if facts.same_customer:
        return "rejected:self"
    if not facts.friend_is_new:
        return "rejected:existing"
    if facts.same_device:
        return "rejected:device"
    if facts.same_ip_last_day >= REFERRALS_PER_IP_PER_DAY:
        return "rejected:ip"
    if facts.last_month >= REFERRALS_PER_MONTH:
        return "rejected:limit"
    return "accepted"


def referral_tag(key: bytes, merchant_id: int, card_id: int) -> str:
    return hmac.new(key, f"ref:{merchant_id}:{card_id}".encode(), hashlib.sha256).hexdigest()[:12]


def referral_token(key: bytes, merchant_id: int, card_id: int) -> str:
    """A card's share-link token: its id and a keyed tag, so nobody can forge one for
    another card and nothing needs storing. The card code never appears in links."""
    return f"{card_id:x}-{referral_tag(key, merchant_id, card_id)}"


def referral_card_id(token: str) -> int | None:
    """The card id a token claims (check it with `referral_tag`)."""
    head, _, tag = (token or "").partition("-")
    if not re.fullmatch(r"[0-9a-f]{1,15}", head) or not re.fullmatch(r"[0-9a-f]{12}", tag):
        return None
    return int(head, 16)
