"""The composition root: how the parts are put together, in one place.

Every connection between parts is listed here, one list per kind: what the outbox worker
delivers (OUTBOX_HANDLERS), who hears a changed card (CARD_CHANGED_LISTENERS) or a
business event (EVENT_LISTENERS), the periodic jobs, the HTTP routers, the CLI
sub-commands, the admin's sections and the smaller hooks. No module registers itself
when imported: the lists take effect when an entry point calls `install()` (the CLI's
`main`, the test suite) or `install_http()` (`api.app.create_app`, which also takes the
routers). A list names the functions it calls as `Ref("module:function")`, imported on
first use, and the pages are imported by `install_http()` only, so a command starts
without loading every part. `grep` for a topic or an event name shows its producers;
this file shows all its consumers.

Nothing imports this module but the entry points, so it may import every part.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer
from sqlalchemy import event
from sqlalchemy.orm import Session

from loyalwallet.analytics import cli as analytics_cli
from loyalwallet.imports import cli as imports_cli
from loyalwallet.integrations.iiko import cli as iiko_cli
from loyalwallet.integrations.rkeeper import cli as rkeeper_cli
from loyalwallet.merchants import cli as merchants_cli
from loyalwallet.messaging import cli as messaging_cli
from loyalwallet.outbox import handlers as outbox
from loyalwallet.outbox.handlers import Handler, Periodic
from loyalwallet.search import cli as search_cli
from loyalwallet.wallet.apple import cli as apple_cli
from loyalwallet.wallet.google import cli as google_cli
from loyalwallet.web import cli as staff_cli
from loyalwallet.web import nav
from loyalwallet.web.nav import N_, Section

if TYPE_CHECKING:
    from fastapi import APIRouter, Request

    from loyalwallet.merchants.actors import Actor


class Ref:
    """A function named "package.module:name", imported on its first call.

    The lists below name what they call this way so that a command which never delivers a
    row or opens a page (`loyalwallet migrate`, `merchant create`) does not import every
    part to start (about 0.6 s of CPU a process). tests/architecture/test_wiring.py
    imports every name, so a typo fails the suite, not a delivery.
    """

    def __init__(self, path: str) -> None:
        self.__module__, _, self.__qualname__ = path.partition(":")
        self.path = path
        self._fn: Callable[..., Any] | None = None

    def resolve(self) -> Callable[..., Any]:
        if self._fn is None:
            fn = getattr(importlib.import_module(self.__module__), self.__qualname__)
            self._fn = fn
            return fn
        return self._fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Ref({self.path!r})"


# --- the outbox ---------------------------------------------------------------------------

# card.changed (CardBook.touch; cards_changed for a chunk): what a changed card sets off.
CARD_CHANGED_LISTENERS: list[Handler] = [
    Ref("loyalwallet.wallet.apple.handlers:wake_devices"),  # push the devices holding its pass
    Ref("loyalwallet.wallet.google.handlers:on_card_changed"),  # patch its Google Wallet object
    # tell the guest's bound Telegram chat (if they want notices)
    Ref("loyalwallet.tgcard.handlers:on_card_changed"),
]

# Business events (outbox.service.emit_event: card.created, purchase.created, ...): each
# listener is retried on its own.
EVENT_LISTENERS: list[Handler] = [
    Ref("loyalwallet.webhooks.service:fan_out"),  # the merchant's webhook endpoints
    Ref("loyalwallet.campaigns.triggers:on_event"),  # event triggers (welcome, tier up)
    Ref("loyalwallet.feedback.handlers:invite"),  # purchase.created: "Rate your visit" on the card
    # certificate.spent/...: push the devices holding the certificate's Apple pass
    Ref("loyalwallet.wallet.apple.handlers:wake_gift_devices"),
    # certificate.*: google.gift for the certificate's Google Wallet object
    Ref("loyalwallet.wallet.google.gifts:on_certificate_event"),
]


def _listeners(kind: str) -> Handler:
    """A handler that runs a list of listeners (outbox.dispatch), built on its first row."""
    lists = {"each": CARD_CHANGED_LISTENERS, "independently": EVENT_LISTENERS}
    built: list[Handler] = []

    def handle(msg: Any) -> None:
        if not built:
            built.append(Ref(f"loyalwallet.outbox.dispatch:{kind}")(lists[kind]))
        built[0](msg)

    return handle


# Topic → the function that delivers a row of it. The topic names are the constants their
# producers use (sms.TOPIC, fraud.TELEGRAM_TOPIC, ...; test_wiring.py checks they agree).
OUTBOX_HANDLERS: dict[str, Handler] = {
    "card.changed": _listeners("each"),
    "event": _listeners("independently"),
    "program.changed": Ref("loyalwallet.cards.handlers:program_changed"),
    "referral.reward": Ref("loyalwallet.cards.handlers:referral_reward"),
    "apple.push": Ref("loyalwallet.wallet.apple.handlers:push"),
    "google.patch": Ref("loyalwallet.wallet.google.handlers:google_patch"),
    "google.class": Ref("loyalwallet.wallet.google.handlers:google_class"),
    "google.message": Ref("loyalwallet.wallet.google.handlers:google_message"),
    "google.check": Ref("loyalwallet.wallet.google.handlers:google_check"),
    "sms": Ref("loyalwallet.enrollment.handlers:send_sms"),  # enrollment.sms.TOPIC
    "telegram.send": Ref("loyalwallet.fraud.service:deliver_telegram"),  # fraud.service.TELEGRAM_TOPIC
    "webhook.deliver": Ref("loyalwallet.webhooks.service:deliver"),  # webhooks.service.TOPIC
    "campaign.start": Ref("loyalwallet.campaigns.service:start"),
    "campaign.deliver": Ref("loyalwallet.campaigns.service:deliver"),
    "trigger.run": Ref("loyalwallet.campaigns.triggers:run"),
    "trigger.fire": Ref("loyalwallet.campaigns.triggers:fire"),
    "iiko.sync": Ref("loyalwallet.integrations.iiko.handlers:iiko_sync"),
    "iiko.topup": Ref("loyalwallet.integrations.iiko.handlers:iiko_topup"),
    "iiko.order": Ref("loyalwallet.integrations.iiko.orders:book"),
    "iiko.consent": Ref("loyalwallet.integrations.iiko.consent:iiko_consent"),
    "email.send": Ref("loyalwallet.messaging.handlers:send_email"),  # messaging.service.EMAIL_TOPIC
    "email.campaign": Ref("loyalwallet.messaging.campaign_email:deliver"),  # campaign_email.TOPIC
    "sms.campaign": Ref("loyalwallet.messaging.campaign_sms:deliver"),  # campaign_sms.TOPIC
    "sms.card": Ref("loyalwallet.messaging.handlers:send_card_sms"),  # messaging.service.SMS_TOPIC
    # A guest's message to the café's bot; the bot's answer, the card, a notice; campaigns.
    "tgcard.update": Ref("loyalwallet.tgcard.handlers:on_update"),  # tgcard.service.UPDATE_TOPIC
    "tgcard.send": Ref("loyalwallet.tgcard.handlers:deliver"),  # tgcard.service.SEND_TOPIC
    "tgcard.campaign": Ref("loyalwallet.tgcard.campaigns:deliver"),  # tgcard.campaigns.TOPIC
    "google.gift": Ref("loyalwallet.wallet.google.handlers:google_gift"),  # wallet.google.gifts.TOPIC
    "certificate.email": Ref("loyalwallet.messaging.gift_email:deliver"),  # messaging.gift_email.TOPIC
}

# Jobs the worker runs every so many seconds (once per interval across all workers); an
# interval may be a function (read from the environment when the worker starts).
PERIODIC: list[Periodic] = [
    Periodic("expire-points", 60.0, Ref("loyalwallet.cards.sweeps:expire_points")),
    Periodic("analytics-rollup", 30.0, Ref("loyalwallet.analytics.rollup:catch_up_some")),
    # The guests' purchase-day bitmaps (buyers of any period); resumable backfill.
    Periodic("analytics-guest-days", 30.0, Ref("loyalwallet.analytics.activity:catch_up_some")),
    # Only the merchants whose cards changed since the last run (a changed-since index).
    Periodic("analytics-snapshot", 60.0, Ref("loyalwallet.analytics.snapshot:refresh_changed")),
    # Cheap when nothing is due (one indexed query), so often: the runs' jitter holds.
    Periodic("campaign-triggers", 10.0, Ref("loyalwallet.campaigns.triggers:schedule_due")),
    Periodic("campaign-finish", 120.0, Ref("loyalwallet.campaigns.service:finish_stragglers")),
    Periodic("fraud-digest", 300.0, Ref("loyalwallet.fraud.service:send_digests")),
    # Cheap when no code is pending (one query); reads the bots' updates when one is.
    Periodic("telegram-link", 5.0, Ref("loyalwallet.fraud.linking:poll_pending")),
    # The guests' bots without a webhook (no HTTPS address): getUpdates.
    Periodic("telegram-card-poll", 3.0, Ref("loyalwallet.tgcard.bots:poll")),
    # SMS still on their way: sms/status after growing pauses, given up after a day.
    Periodic("sms-status", 60.0, Ref("loyalwallet.messaging.reports:poll")),
    # Objects not known saved are asked about again now and then (bounded per run).
    Periodic(
        "google-saves",
        Ref("loyalwallet.wallet.google.saves:interval"),
        Ref("loyalwallet.wallet.google.saves:schedule"),
    ),
    Periodic("enrollment-purge", 3600.0, Ref("loyalwallet.enrollment.handlers:purge")),
    Periodic("web-sessions-sweep", 3600.0, Ref("loyalwallet.web.sessions:sweep")),
    # Delivered outbox rows older than the retention (7 days), in small batches.
    Periodic("outbox-retention", 60.0, Ref("loyalwallet.outbox.retention:purge_delivered")),
    # The per-card outcomes of batched Google messages, after the same retention (not an
    # open campaign's), in small batches.
    Periodic("google-sends-retention", 600.0, Ref("loyalwallet.campaigns.retention:purge_google_sends")),
    # iiko guests' cards read again from iiko, a bounded batch per merchant and run.
    Periodic(
        "iiko-reconcile",
        Ref("loyalwallet.integrations.iiko.handlers:interval"),
        Ref("loyalwallet.integrations.iiko.handlers:reconcile"),
    ),
    Periodic("expire-certificates", 60.0, Ref("loyalwallet.certificates.ledger:expire_due")),
    Periodic("expire-subscriptions", 60.0, Ref("loyalwallet.subscriptions.ledger:expire_due")),
    # Idempotency-Key answers older than LOYALWALLET_IDEMPOTENCY_TTL_HOURS (72 h), in batches.
    Periodic("idempotency-expiry", 600.0, Ref("loyalwallet.checkout.idempotency:purge_expired")),
]

# Told the outcome of every delivery attempt (topic, "done"/"retry"/"dead", seconds):
# /metrics counts APNs, Google, SMS, Telegram outcomes.
OUTBOX_OBSERVERS = [Ref("loyalwallet.ops.metrics:observe_delivery")]

# --- smaller hooks ----------------------------------------------------------------------

# Campaign channels besides the wallet (campaigns.delivery.CHANNELS).
CAMPAIGN_CHANNELS = {
    "email": Ref("loyalwallet.messaging.campaign_email:hand_over"),
    "sms": Ref("loyalwallet.messaging.campaign_sms:hand_over"),
    "telegram": Ref("loyalwallet.tgcard.campaigns:hand_over"),
}

# Who hears a bot's update that is no owner's link code (fraud.linking.handle_update).
TELEGRAM_UPDATE_LISTENERS = [Ref("loyalwallet.tgcard.service:intake")]

# Each edits a card view's links (session, card, program, urls): the signed Google link.
CARD_URL_HOOKS = [Ref("loyalwallet.wallet.google.links:card_view_hook")]

# Program kind -> who opens a card in the engine that runs it (joining an iiko programme).
CARD_OPENERS = {"iiko": Ref("loyalwallet.integrations.iiko.guests:open_card")}
# A guest's consents changed (given at joining, withdrawn by unsubscribing, erased): iiko's
# customer is told (its consent status and promo messages), for guests holding iiko cards.
CONSENT_LISTENERS = [Ref("loyalwallet.integrations.iiko.consent:consent_changed")]

# Program kind -> who credits a campaign's or trigger's gift of points in that engine.
GIFT_SENDERS = {"iiko": Ref("loyalwallet.integrations.iiko.handlers:queue_gift")}

# Extra tiles on the admin's dashboard (analytics.pages.TILES; set by install_http).
DASHBOARD_TILES = [
    Ref("loyalwallet.certificates.reports:dashboard_tile"),
    Ref("loyalwallet.subscriptions.reports:dashboard_tile"),
]
# Blocks at the top of the dashboard (analytics.pages.PANELS; set by install_http).
DASHBOARD_PANELS = [Ref("loyalwallet.ops.pages:setup_panel")]  # the setup checklist, until all is done

# Red banners on every admin page: (merchant, role) -> None or a banner.
ADMIN_BANNERS = [
    Ref("loyalwallet.enrollment.sms.settings:console_banner")
]  # codes go to the console on a real install

# Lines other parts add to what the guest sees of a card (web card, Apple pass, Google
# object; cards.views.CARD_NOTES): running subscriptions, what is left and until when.
CARD_NOTES = [Ref("loyalwallet.subscriptions.service:card_notes")]

# Scheduled trigger kinds whose guests another part lists (campaigns.delivery.CANDIDATE_SOURCES).
TRIGGER_CANDIDATES = {"subscription_ending": Ref("loyalwallet.subscriptions.reminders:ending_soon")}

# SELECT (card_id, wallet) of the cards saved in each wallet, for the dashboard.
WALLET_SOURCES = [Ref("loyalwallet.analytics.wallets:apple"), Ref("loyalwallet.analytics.wallets:google")]

# SQLAlchemy Session events one part listens to for another's writes (imported when
# installed: SQLAlchemy reads a listener's signature).
SESSION_LISTENERS: list[tuple[str, Ref]] = [
    ("after_flush", Ref("loyalwallet.search.service:index_names")),  # guests' name tokens for the search
]

# --- the admin's sections, the command line --------------------------------------------------

NAV_SECTIONS: list[Section] = [
    Section("dashboard", N_("Dashboard"), "/admin", order=10),
    Section("programs", N_("Programs"), "/admin/programs", order=20),
    Section("invite", N_("Invite guests"), "/admin/invite", order=25),
    Section("guests", N_("Guests"), "/admin/guests", order=30),
    Section("purchases", N_("Purchases"), "/admin/purchases", order=40),
    Section("campaigns", N_("Campaigns"), "/admin/campaigns", order=50),
    Section("triggers", N_("Triggers"), "/admin/triggers", order=51),
    Section("coupons", N_("Coupons"), "/admin/coupons", order=52),
    Section("alerts", N_("Alerts"), "/admin/alerts", order=60),
    Section("feedback", N_("Feedback"), "/admin/feedback", order=62),
    Section("staff_report", N_("Staff report"), "/admin/reports/staff", order=63),
    Section("deliveries", N_("Failed deliveries"), "/admin/deliveries", order=80),
    Section("webhooks", N_("Webhooks"), "/admin/webhooks", order=85),
    Section("staff", N_("Staff"), "/admin/staff", role="owner", order=90),
    Section("locations", N_("Locations"), "/admin/locations", role="owner", order=91),
    Section("api_keys", N_("API keys"), "/admin/api-keys", role="owner", order=92),
    Section("iiko", N_("iiko"), "/admin/iiko", role="owner", order=93),
    Section("rkeeper", N_("r_keeper"), "/admin/rkeeper", role="owner", order=93),
    Section("wallets", N_("Wallets"), "/admin/wallets", role="owner", order=94),
    Section("sms", N_("SMS"), "/admin/sms", role="owner", order=95),
    Section("telegram_card", N_("Telegram card"), "/admin/telegram-card", role="owner", order=96),
    Section("cashier_settings", N_("Cashier settings"), "/admin/settings/cashier", role="owner", order=97),
    Section("cashier", N_("Cashier"), "/cashier", role="cashier", order=200),
    Section("certificates", N_("Gift certificates"), "/cashier/certificates", role="cashier", order=201),
    Section("subscriptions", N_("Subscriptions"), "/cashier/subscriptions", role="cashier", order=202),
]

# `loyalwallet NAME ...`
CLI_APPS: list[tuple[str, typer.Typer]] = [
    ("merchant", merchants_cli.app),
    ("apple", apple_cli.app),
    ("google", google_cli.app),
    ("import", imports_cli.app),
    ("search", search_cli.app),
    ("staff", staff_cli.app),
    ("iiko", iiko_cli.app),
    ("rkeeper", rkeeper_cli.app),
    ("email", messaging_cli.app),
    ("sms", messaging_cli.sms_app),
    ("analytics", analytics_cli.app),
]


def install() -> None:
    """Put the lists above in force. Idempotent: every entry point calls it."""
    from loyalwallet.analytics import queries as analytics_queries
    from loyalwallet.campaigns import delivery as campaign_delivery
    from loyalwallet.cards import service as cards_service
    from loyalwallet.cards import views as cards_views
    from loyalwallet.customers import service as customers_service
    from loyalwallet.fraud import linking as telegram_linking

    outbox.HANDLERS.clear()
    outbox.HANDLERS.update(OUTBOX_HANDLERS)
    outbox.PERIODIC[:] = PERIODIC
    outbox.OBSERVERS[:] = OUTBOX_OBSERVERS
    cards_views.CARD_URL_HOOKS[:] = CARD_URL_HOOKS
    cards_views.CARD_NOTES[:] = CARD_NOTES
    cards_service.CARD_OPENERS.clear()
    cards_service.CARD_OPENERS.update(CARD_OPENERS)
    customers_service.CONSENT_LISTENERS[:] = CONSENT_LISTENERS
    campaign_delivery.GIFT_SENDERS.clear()
    campaign_delivery.GIFT_SENDERS.update(GIFT_SENDERS)
    campaign_delivery.CHANNELS.clear()
    campaign_delivery.CHANNELS.update(CAMPAIGN_CHANNELS)
    campaign_delivery.CANDIDATE_SOURCES.clear()
    campaign_delivery.CANDIDATE_SOURCES.update(TRIGGER_CANDIDATES)
    analytics_queries.WALLET_SOURCES[:] = WALLET_SOURCES
    telegram_linking.UPDATE_LISTENERS[:] = TELEGRAM_UPDATE_LISTENERS
    nav.SECTIONS[:] = NAV_SECTIONS
    for name, listener in SESSION_LISTENERS:
        fn = listener.resolve()
        if not event.contains(Session, name, fn):
            event.listen(Session, name, fn)


# --- HTTP: imported by the app only (a command or the worker loads no page) ------------------


def routers() -> list[APIRouter]:
    """Every HTTP router, in this order (an earlier router wins a path both match)."""
    from loyalwallet.analytics import pages as analytics_pages
    from loyalwallet.campaigns import api as campaigns_api
    from loyalwallet.campaigns import pages as campaign_pages
    from loyalwallet.cards import api as cards_api
    from loyalwallet.certificates import api as certificates_api
    from loyalwallet.certificates import fast as certificates_fast
    from loyalwallet.certificates import pages as certificate_pages
    from loyalwallet.certificates import public as certificates_public
    from loyalwallet.checkout import api as checkout_api
    from loyalwallet.checkout import fast as checkout_fast
    from loyalwallet.checkout import pages as checkout_pages
    from loyalwallet.customers import api as customers_api
    from loyalwallet.customers import pages as customer_pages
    from loyalwallet.enrollment import api as enrollment_api
    from loyalwallet.enrollment import pages as enrollment_pages
    from loyalwallet.enrollment import public as enrollment_public
    from loyalwallet.enrollment.sms import pages as sms_pages
    from loyalwallet.feedback import api as feedback_api
    from loyalwallet.feedback import pages as feedback_pages
    from loyalwallet.feedback import public as feedback_public
    from loyalwallet.fraud import api as fraud_api
    from loyalwallet.fraud import pages as fraud_pages
    from loyalwallet.integrations.iiko import api as iiko_api
    from loyalwallet.integrations.iiko import pages as iiko_pages
    from loyalwallet.integrations.rkeeper import api as rkeeper_api
    from loyalwallet.integrations.rkeeper import pages as rkeeper_pages
    from loyalwallet.merchants import api as merchants_api
    from loyalwallet.merchants import pages as merchant_pages
    from loyalwallet.messaging import api as messaging_api
    from loyalwallet.messaging import pages as messaging_pages
    from loyalwallet.messaging import public as messaging_public
    from loyalwallet.ops import api as ops_api
    from loyalwallet.outbox import api as outbox_api
    from loyalwallet.outbox import pages as outbox_pages
    from loyalwallet.programs import api as programs_api
    from loyalwallet.programs import pages as program_pages
    from loyalwallet.reports import pages as staff_report_pages
    from loyalwallet.subscriptions import api as subscriptions_api
    from loyalwallet.subscriptions import pages as subscription_pages
    from loyalwallet.tgcard import pages as tgcard_pages
    from loyalwallet.tgcard import public as tgcard_public
    from loyalwallet.wallet import pages as wallet_pages
    from loyalwallet.wallet.apple import api as apple_api
    from loyalwallet.wallet.google import public as google_api
    from loyalwallet.web import front as web_front
    from loyalwallet.web import login as web_login
    from loyalwallet.webhooks import api as webhooks_api
    from loyalwallet.webhooks import pages as webhook_pages

    return [
        # POST .../certificates/{code}/redemptions on PostgreSQL, before the general route; first:
        # FastAPI matches the routers one by one, and a spend is the hot path.
        certificates_fast.router,
        programs_api.router,
        cards_api.router,
        checkout_fast.router,  # POST /api/v1/purchases on PostgreSQL, before the general route
        checkout_api.router,
        merchants_api.router,
        customers_api.router,
        programs_api.assets_router,
        enrollment_api.router,
        enrollment_public.router,
        google_api.router,
        apple_api.router,
        web_login.router,
        checkout_pages.router,
        analytics_pages.router,
        program_pages.router,
        enrollment_pages.router,  # Invite guests: join link, QR, table tents, channels
        customer_pages.router,
        outbox_pages.router,
        merchant_pages.router,
        webhooks_api.router,
        outbox_api.router,
        campaigns_api.router,
        fraud_api.router,
        messaging_pages.router,  # before campaign pages: /admin/campaigns/{id}/sms-estimate
        campaign_pages.router,
        fraud_pages.router,
        webhook_pages.router,
        certificates_api.router,
        certificates_public.router,
        certificate_pages.router,
        subscriptions_api.router,
        subscription_pages.router,
        feedback_public.router,
        feedback_pages.router,
        feedback_api.router,
        messaging_api.router,
        messaging_public.router,
        staff_report_pages.router,
        tgcard_public.router,  # /c/{token}/telegram, the bot's webhook
        tgcard_pages.router,
        web_front.router,  # /, /favicon.ico, /docs and /redoc served offline
        iiko_api.router,
        iiko_pages.router,
        rkeeper_api.router,  # FarCards' HTTP module: /integrations/rkeeper/...
        rkeeper_pages.router,
        wallet_pages.router,  # /admin/wallets
        sms_pages.router,  # /admin/sms
        ops_api.router,  # /readyz, /metrics
    ]


def api_authenticators() -> list[Callable[[Request], Actor | None]]:
    """Other ways to authenticate an API call than an API key: the staff's session cookie."""
    from loyalwallet.web.pages import session_actor

    return [session_actor]


def wallet_ready() -> dict[str, Callable[[Session, int], bool]]:
    """Whether a wallet's button is shown on the join success page and the web card."""
    from loyalwallet.tgcard import service as tgcard_service
    from loyalwallet.wallet.apple import credentials as apple_credentials
    from loyalwallet.wallet.google import issuer as google_issuer

    return {
        "apple": apple_credentials.can_sign,
        "google": google_issuer.has_issuer,
        "telegram": tgcard_service.ready,
    }


def install_http() -> list[APIRouter]:
    """install(), and the HTTP side: the API authenticators; returns the routers."""
    from loyalwallet.analytics import pages as analytics_pages
    from loyalwallet.api import deps as api_deps
    from loyalwallet.enrollment import webcard
    from loyalwallet.web import pages as web_pages

    install()
    web_pages.BANNERS[:] = ADMIN_BANNERS
    api_deps.EXTRA_AUTHENTICATORS[:] = api_authenticators()
    analytics_pages.TILES[:] = DASHBOARD_TILES
    analytics_pages.PANELS[:] = DASHBOARD_PANELS
    webcard.WALLET_READY.clear()
    webcard.WALLET_READY.update(wallet_ready())
    return routers()
