"""Gift-certificate rules, pure: codes, what a certificate pays, what a refund gives back.

Where a certificate sits in the checkout order (DESIGN.md §3): after 1. the tier
discount, 2. the coupon or reward and 3. the points, the certificate pays from what is
left to pay (`to_pay`), like a means of payment: it does not change the discounts, the
points limit or the accrual (points accrue on the check as if paid in cash; the guest
paid real money for the certificate). The till then collects `to_collect` = to_pay -
certificate_paid. A refund returns money in the proportion the purchase was paid and,
of that money, gives the certificate its share first-by-proportion: the certificate's
cumulative share is floor(certificate_paid * money_refunded / to_pay), so the total
given back never exceeds what it paid and a full refund gives back exactly that.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets

from loyalwallet.errors import DomainError, Explained

# No 0/O, 1/I/L: a code read out over the phone or typed from paper survives.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 16  # 16 * log2(31) ≈ 79 bits: not guessable, not enumerable
CODE_PREFIX = "G"  # tells a certificate from a card (13 digits) at the scanner
_CLEAN = re.compile(r"[\s-]+")
MAX_VALID_DAYS = 3650
DEFAULT_VALID_DAYS = 365


def new_code() -> str:
    return CODE_PREFIX + "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH - 1))


def normalise_code(code: str) -> str:
    """Printed codes are grouped ("GABC-DEFG-..."); the stored form has no spaces or dashes."""
    return _CLEAN.sub("", code).upper()


def looks_like_code(code: str) -> bool:
    c = normalise_code(code)
    return len(c) == CODE_LENGTH and c[0] == CODE_PREFIX and all(ch in ALPHABET for ch in c[1:])


def grouped(code: str) -> str:
    """For print and the web card: GABC-DEFG-HJKM-NPQR."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def masked(code: str) -> str:
    """For receipts, webhooks and logs: the code is a bearer secret."""
    return "····" + code[-4:]


def expires_at(created: dt.datetime, valid_days: int | None) -> dt.datetime | None:
    """None = never. A certificate is valid through the end of its last day (UTC)."""
    if valid_days is None:
        return None
    if not 1 <= valid_days <= MAX_VALID_DAYS:
        raise Explained(
            "validation_error",
            "valid_days must be 1-{max_valid_days}",
            max_valid_days=MAX_VALID_DAYS,
            extra={"field": "valid_days"},
        )
    return created + dt.timedelta(days=valid_days)


def check_usable(status: str, expires: dt.datetime | None, now: dt.datetime) -> None:
    if status == "void":
        raise DomainError("certificate_unavailable", "this gift certificate was cancelled")
    if status == "expired" or (expires is not None and expires <= now):
        raise DomainError(
            "certificate_expired",
            "this gift certificate has expired",
            expired_at=expires.isoformat() if expires else None,
        )


def pay(balance: int, left: int, wanted: int | None) -> int:
    """What the certificate pays of `left` (what is left to pay after discounts and points).
    `wanted` None = as much as it can; a wanted amount is paid exactly or refused."""
    if wanted is None:
        if balance <= 0 and left > 0:
            raise DomainError(
                "certificate_insufficient", "this gift certificate has no money left", balance=0
            )
        return min(balance, left)
    if wanted > left:
        raise Explained(
            "validation_error",
            "the certificate would pay {wanted}, but only {left} is left to pay",
            wanted=wanted,
            left=left,
            extra={"field": "certificate_amount"},
        )
    if wanted > balance:
        raise Explained(
            "certificate_insufficient",
            "the gift certificate holds {balance}, {wanted} asked",
            balance=balance,
            wanted=wanted,
            extra={"balance": balance},
        )
    return wanted


def refund_share(paid: int, to_pay: int, money_refunded_after: int, already_returned: int) -> int:
    """What the certificate gets back when a refund brings the purchase's money refunded
    so far to `money_refunded_after` (cumulative, so partial refunds never drift)."""
    if paid <= 0 or to_pay <= 0:
        return 0
    due = paid * min(money_refunded_after, to_pay) // to_pay
    return max(0, min(due, paid) - already_returned)


def standalone_refund(spent: int, already_returned: int, amount: int | None) -> int:
    """A refund of a spend made without a purchase (a guest without a card): at most what
    is left of it; None = all that is left."""
    left = spent - already_returned
    if amount is None:
        amount = left
    if amount <= 0 or amount > left:
        raise Explained(
            "refund_exceeds_purchase",
            "{left} of this spend is left to refund, {amount} asked",
            left=left,
            amount=amount,
            extra={"refundable": left},
        )
    return amount
