"""Every table of every part, imported in one place for Alembic and `create_all`."""

from loyalwallet.analytics.models import (
    CardMonth,
    CohortMonth,
    CohortSize,
    DayCategory,
    DayTotals,
    GuestCell,
    RollupState,
)
from loyalwallet.campaigns.models import (
    Campaign,
    CampaignRecipient,
    CouponBatch,
    Offer,
    Trigger,
    TriggerFiring,
)
from loyalwallet.cards.models import Card, Coupon, LedgerEntry, StampEntry
from loyalwallet.certificates.models import CertificateEntry, GiftCertificate
from loyalwallet.checkout.models import IdempotencyRecord, Purchase, PurchaseLine, Refund
from loyalwallet.customers.models import Consent, Customer
from loyalwallet.db import Base
from loyalwallet.enrollment.models import Channel, ConsentText, Join, JoinForm, OtpChallenge, RateHit
from loyalwallet.feedback.models import Feedback
from loyalwallet.fraud.models import Alert, Digest, TelegramLink
from loyalwallet.imports.models import CardCodeRange
from loyalwallet.integrations.iiko.models import IikoConnection, IikoGuest, IikoOrder, IikoTopup
from loyalwallet.integrations.rkeeper.models import RkeeperCheck, RkeeperConnection
from loyalwallet.merchants.models import ApiKey, AuditLog, Location, Merchant, Staff, StaffLocation
from loyalwallet.messaging.models import CardSend
from loyalwallet.outbox.models import OutboxMessage, PeriodicRun, WorkerHeartbeat
from loyalwallet.programs.models import Asset, Program
from loyalwallet.search.models import NameToken
from loyalwallet.subscriptions.models import Subscription, SubscriptionEntry, SubscriptionPlan
from loyalwallet.tgcard.models import TelegramBot, TelegramChat, TelegramStart
from loyalwallet.wallet.apple.models import (
    AppleCertificate,
    AppleCounter,
    ApplePushKey,
    ApplePushPending,
    AppleRegistration,
)
from loyalwallet.wallet.google.models import GoogleClass, GoogleIssuer, GoogleMessageSend, GoogleObject
from loyalwallet.web.models import LoginAttempt, WebSession
from loyalwallet.webhooks.models import WebhookEndpoint

__all__ = [
    "Alert",
    "ApiKey",
    "AppleCertificate",
    "AppleCounter",
    "ApplePushKey",
    "ApplePushPending",
    "AppleRegistration",
    "Asset",
    "AuditLog",
    "Base",
    "Campaign",
    "CampaignRecipient",
    "Card",
    "CardCodeRange",
    "CardMonth",
    "CardSend",
    "CertificateEntry",
    "Channel",
    "CohortMonth",
    "CohortSize",
    "Consent",
    "ConsentText",
    "Coupon",
    "CouponBatch",
    "Customer",
    "DayCategory",
    "DayTotals",
    "Digest",
    "Feedback",
    "GiftCertificate",
    "GoogleClass",
    "GoogleIssuer",
    "GoogleMessageSend",
    "GoogleObject",
    "GuestCell",
    "IdempotencyRecord",
    "IikoConnection",
    "IikoGuest",
    "IikoOrder",
    "IikoTopup",
    "Join",
    "JoinForm",
    "LedgerEntry",
    "Location",
    "LoginAttempt",
    "Merchant",
    "NameToken",
    "Offer",
    "OtpChallenge",
    "OutboxMessage",
    "PeriodicRun",
    "Program",
    "Purchase",
    "PurchaseLine",
    "RateHit",
    "Refund",
    "RkeeperCheck",
    "RkeeperConnection",
    "RollupState",
    "Staff",
    "StaffLocation",
    "StampEntry",
    "Subscription",
    "SubscriptionEntry",
    "SubscriptionPlan",
    "TelegramBot",
    "TelegramChat",
    "TelegramLink",
    "TelegramStart",
    "Trigger",
    "TriggerFiring",
    "WebSession",
    "WebhookEndpoint",
    "WorkerHeartbeat",
]
