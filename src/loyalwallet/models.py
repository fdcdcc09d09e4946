"""Every table of every part, imported in one place for Alembic and `create_all`."""

from loyalwallet.cards.models import Card, Coupon, LedgerEntry, StampEntry
from loyalwallet.checkout.models import IdempotencyRecord, Purchase, PurchaseLine, Refund
from loyalwallet.customers.models import Consent, Customer
from loyalwallet.db import Base
from loyalwallet.enrollment.models import Channel, ConsentText, Join, JoinForm, OtpChallenge, RateHit
from loyalwallet.merchants.models import ApiKey, AuditLog, Location, Merchant, Staff, StaffLocation
from loyalwallet.outbox.models import OutboxMessage
from loyalwallet.programs.models import Asset, Program
from loyalwallet.wallet.apple.models import (
    AppleCertificate,
    AppleCounter,
    ApplePushKey,
    ApplePushPending,
    AppleRegistration,
)
from loyalwallet.wallet.google.models import GoogleClass, GoogleIssuer, GoogleObject

__all__ = [
    "ApiKey",
    "AppleCertificate",
    "AppleCounter",
    "ApplePushKey",
    "ApplePushPending",
    "AppleRegistration",
    "Asset",
    "AuditLog",
    "Base",
    "Card",
    "Channel",
    "Consent",
    "ConsentText",
    "Coupon",
    "Customer",
    "GoogleClass",
    "GoogleIssuer",
    "GoogleObject",
    "IdempotencyRecord",
    "Join",
    "JoinForm",
    "LedgerEntry",
    "Location",
    "Merchant",
    "OtpChallenge",
    "OutboxMessage",
    "Program",
    "Purchase",
    "PurchaseLine",
    "RateHit",
    "Refund",
    "Staff",
    "StaffLocation",
    "StampEntry",
]
