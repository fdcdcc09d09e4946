"""The composition root: how the parts are put together, in one place.

Every connection between parts is listed here, one list per kind: what the outbox worker
delivers (OUTBOX_HANDLERS), who hears a changed card (CARD_CHANGED_LISTENERS) or a
business event (EVENT_LISTENERS), the periodic jobs, the HTTP routers, the CLI
sub-commands, the admin's sections and the smaller hooks. No module registers itself
when imported: the lists take effect when an entry point calls `install()` (the CLI's
`main`, the test suite) or `install_http()` (`api.app.create_app`, which also takes the
routers; the pages are imported there only, so a command or the worker loads none). `grep` for a topic or an event name shows
its producers; this file shows all its consumers.

Nothing imports this module but the entry points, so it may import every part.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer
from sqlalchemy import event
from sqlalchemy.orm import Session

from loyalwallet import models as _every_table  # noqa: F401
from loyalwallet.analytics import queries as analytics_queries
from loyalwallet.analytics import rollup, snapshot, wallets
from loyalwallet.campaigns import delivery as campaign_delivery
from loyalwallet.campaigns import service as campaigns
from loyalwallet.campaigns import triggers
from loyalwallet.cards import handlers as cards_handlers
from loyalwallet.cards import service as cards_service
from loyalwallet.cards import sweeps as cards_sweeps
from loyalwallet.cards import views as cards_views
from loyalwallet.certificates import ledger as certificates_ledger
from loyalwallet.certificates import reports as certificates_reports
from loyalwallet.checkout import idempotency
from loyalwallet.enrollment import handlers as enrollment_handlers
from loyalwallet.enrollment import sms
from loyalwallet.feedback import handlers as feedback_handlers
from loyalwallet.fraud import linking as telegram_linking
from loyalwallet.fraud import service as fraud
from loyalwallet.imports import cli as imports_cli
from loyalwallet.integrations.iiko import cli as iiko_cli
from loyalwallet.integrations.iiko import guests as iiko_guests
from loyalwallet.integrations.iiko import handlers as iiko
from loyalwallet.integrations.iiko import orders as iiko_orders
from loyalwallet.merchants import cli as merchants_cli
from loyalwallet.messaging import campaign_email
from loyalwallet.messaging import handlers as messaging_handlers
from loyalwallet.messaging import service as messaging
from loyalwallet.ops import metrics as ops_metrics
from loyalwallet.outbox import dispatch
from loyalwallet.outbox import handlers as outbox
from loyalwallet.outbox import retention as outbox_retention
from loyalwallet.outbox.handlers import Handler, Periodic
from loyalwallet.search import cli as search_cli
from loyalwallet.search import service as search
from loyalwallet.wallet.apple import cli as apple_cli
from loyalwallet.wallet.apple import handlers as apple
from loyalwallet.wallet.google import cli as google_cli
from loyalwallet.wallet.google import handlers as google
from loyalwallet.wallet.google import links as google_links
from loyalwallet.wallet.google import saves as google_saves
from loyalwallet.web import cli as staff_cli
from loyalwallet.web import nav, sessions
from loyalwallet.web.nav import N_, Section
from loyalwallet.webhooks import service as webhooks

if TYPE_CHECKING:
    from fastapi import APIRouter, Request

    from loyalwallet.merchants.actors import Actor

# --- the outbox ---------------------------------------------------------------------------

# card.changed (CardBook.touch; cards_changed for a chunk): what a changed card sets off.
CARD_CHANGED_LISTENERS: list[Handler] = [
    apple.wake_devices,  # push the devices holding its pass
    google.on_card_changed,  # patch its Google Wallet object
]

# Business events (outbox.service.emit_event: card.created, purchase.created, ...): each
# listener is retried on its own.
EVENT_LISTENERS: list[Handler] = [
    webhooks.fan_out,  # the merchant's webhook endpoints
    triggers.on_event,  # event triggers (welcome, tier up)
    feedback_handlers.invite,  # purchase.created: "Rate your visit" on the card
]

# Topic → the function that delivers a row of it.
OUTBOX_HANDLERS: dict[str, Handler] = {
    "card.changed": dispatch.each(CARD_CHANGED_LISTENERS),
    "event": dispatch.independently(EVENT_LISTENERS),
    "program.changed": cards_handlers.program_changed,
    "referral.reward": cards_handlers.referral_reward,
    "apple.push": apple.push,
    "google.patch": google.google_patch,
    "google.class": google.google_class,
    "google.message": google.google_message,
    "google.check": google.google_check,
    sms.TOPIC: enrollment_handlers.send_sms,
    fraud.TELEGRAM_TOPIC: fraud.deliver_telegram,
    webhooks.TOPIC: webhooks.deliver,
    "campaign.start": campaigns.start,
    "campaign.deliver": campaigns.deliver,
    "trigger.run": triggers.run,
    "trigger.fire": triggers.fire,
    "iiko.sync": iiko.iiko_sync,
    "iiko.topup": iiko.iiko_topup,
    "iiko.order": iiko_orders.book,
    messaging.EMAIL_TOPIC: messaging_handlers.send_email,
    campaign_email.TOPIC: campaign_email.deliver,
}

# Jobs the worker runs every so many seconds (once per interval across all workers).
PERIODIC: list[Periodic] = [
    Periodic("expire-points", 60.0, cards_sweeps.expire_points),
    Periodic("analytics-rollup", 30.0, rollup.catch_up_some),
    # Only the merchants whose cards changed since the last run (a changed-since index).
    Periodic("analytics-snapshot", 60.0, snapshot.refresh_changed),
    # Cheap when nothing is due (one indexed query), so often: the runs' jitter holds.
    Periodic("campaign-triggers", 10.0, triggers.schedule_due),
    Periodic("campaign-finish", 120.0, campaigns.finish_stragglers),
    Periodic("fraud-digest", 300.0, fraud.send_digests),
    # Cheap when no code is pending (one query); reads the bots' updates when one is.
    Periodic("telegram-link", 5.0, telegram_linking.poll_pending),
    # Objects not known saved are asked about again now and then (bounded per run).
    Periodic("google-saves", google_saves.interval(), google_saves.schedule),
    Periodic("enrollment-purge", 3600.0, enrollment_handlers.purge),
    Periodic("web-sessions-sweep", 3600.0, sessions.sweep),
    # Delivered outbox rows older than the retention (7 days), in small batches.
    Periodic("outbox-retention", 60.0, outbox_retention.purge_delivered),
    # iiko guests' cards read again from iiko, a bounded batch per merchant and run.
    Periodic("iiko-reconcile", iiko.interval(), iiko.reconcile),
    Periodic("expire-certificates", 60.0, certificates_ledger.expire_due),
    # Idempotency-Key answers older than LOYALWALLET_IDEMPOTENCY_TTL_HOURS (72 h), in batches.
    Periodic("idempotency-expiry", 600.0, idempotency.purge_expired),
]

# Told the outcome of every delivery attempt (topic, "done"/"retry"/"dead", seconds).
OUTBOX_OBSERVERS = [ops_metrics.observe_delivery]  # /metrics: APNs, Google, SMS, Telegram outcomes

# --- smaller hooks ----------------------------------------------------------------------

# Campaign channels besides the wallet (campaigns.delivery.CHANNELS).
CAMPAIGN_CHANNELS = {"email": campaign_email.hand_over}

# Each edits a card view's links (session, card, program, urls): the signed Google link.
CARD_URL_HOOKS = [google_links.card_view_hook]

# Program kind -> who opens a card in the engine that runs it (joining an iiko programme).
CARD_OPENERS = {"iiko": iiko_guests.open_card}

# Program kind -> who credits a campaign's or trigger's gift of points in that engine.
GIFT_SENDERS = {"iiko": iiko.queue_gift}
# Extra tiles on the admin's dashboard (analytics.pages.TILES; set by install_http).
DASHBOARD_TILES = [certificates_reports.dashboard_tile]

# SELECT (card_id, wallet) of the cards saved in each wallet, for the dashboard.
WALLET_SOURCES = [wallets.apple, wallets.google]

# SQLAlchemy Session events one part listens to for another's writes.
SESSION_LISTENERS: list[tuple[str, Any]] = [
    ("after_flush", search.index_names),  # guests' name tokens for the search
]

# --- the admin's sections, the command line --------------------------------------------------

NAV_SECTIONS: list[Section] = [
    Section("dashboard", N_("Dashboard"), "/admin", order=10),
    Section("programs", N_("Programs"), "/admin/programs", order=20),
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
    Section("cashier", N_("Cashier"), "/cashier", role="cashier", order=200),
    Section("certificates", N_("Gift certificates"), "/cashier/certificates", role="cashier", order=201),
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
]


def install() -> None:
    """Put the lists above in force. Idempotent: every entry point calls it."""
    outbox.HANDLERS.clear()
    outbox.HANDLERS.update(OUTBOX_HANDLERS)
    outbox.PERIODIC[:] = PERIODIC
    outbox.OBSERVERS[:] = OUTBOX_OBSERVERS
    cards_views.CARD_URL_HOOKS[:] = CARD_URL_HOOKS
    cards_service.CARD_OPENERS.clear()
    cards_service.CARD_OPENERS.update(CARD_OPENERS)
    campaign_delivery.GIFT_SENDERS.clear()
    campaign_delivery.GIFT_SENDERS.update(GIFT_SENDERS)
    campaign_delivery.CHANNELS.clear()
    campaign_delivery.CHANNELS.update(CAMPAIGN_CHANNELS)
    analytics_queries.WALLET_SOURCES[:] = WALLET_SOURCES
    nav.SECTIONS[:] = NAV_SECTIONS
    for name, listener in SESSION_LISTENERS:
        if not event.contains(Session, name, listener):
            event.listen(Session, name, listener)


# --- HTTP: imported by the app only (a command or the worker loads no page) ------------------


def routers() -> list[APIRouter]:
    """Every HTTP router, in this order (an earlier router wins a path both match)."""
    from loyalwallet.analytics import pages as analytics_pages
    from loyalwallet.campaigns import api as campaigns_api
    from loyalwallet.campaigns import pages as campaign_pages
    from loyalwallet.cards import api as cards_api
    from loyalwallet.certificates import api as certificates_api
    from loyalwallet.certificates import pages as certificate_pages
    from loyalwallet.certificates import public as certificates_public
    from loyalwallet.checkout import api as checkout_api
    from loyalwallet.checkout import fast as checkout_fast
    from loyalwallet.checkout import pages as checkout_pages
    from loyalwallet.customers import api as customers_api
    from loyalwallet.customers import pages as customer_pages
    from loyalwallet.enrollment import api as enrollment_api
    from loyalwallet.enrollment import public as enrollment_public
    from loyalwallet.feedback import api as feedback_api
    from loyalwallet.feedback import pages as feedback_pages
    from loyalwallet.feedback import public as feedback_public
    from loyalwallet.fraud import api as fraud_api
    from loyalwallet.fraud import pages as fraud_pages
    from loyalwallet.integrations.iiko import api as iiko_api
    from loyalwallet.integrations.iiko import pages as iiko_pages
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
    from loyalwallet.wallet.apple import api as apple_api
    from loyalwallet.wallet.google import public as google_api
    from loyalwallet.web import front as web_front
    from loyalwallet.web import login as web_login
    from loyalwallet.webhooks import api as webhooks_api
    from loyalwallet.webhooks import pages as webhook_pages

    return [
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
        customer_pages.router,
        outbox_pages.router,
        merchant_pages.router,
        webhooks_api.router,
        outbox_api.router,
        campaigns_api.router,
        fraud_api.router,
        campaign_pages.router,
        fraud_pages.router,
        webhook_pages.router,
        certificates_api.router,
        certificates_public.router,
        certificate_pages.router,
        feedback_public.router,
        feedback_pages.router,
        feedback_api.router,
        messaging_api.router,
        messaging_pages.router,
        messaging_public.router,
        staff_report_pages.router,
        web_front.router,  # /, /favicon.ico, /docs and /redoc served offline
        iiko_api.router,
        iiko_pages.router,
        ops_api.router,  # /readyz, /metrics
    ]


def api_authenticators() -> list[Callable[[Request], Actor | None]]:
    """Other ways to authenticate an API call than an API key: the staff's session cookie."""
    from loyalwallet.web.pages import session_actor

    return [session_actor]


def wallet_ready() -> dict[str, Callable[[Session, int], bool]]:
    """Whether a wallet's button is shown on the join success page and the web card."""
    from loyalwallet.wallet.apple import credentials as apple_credentials
    from loyalwallet.wallet.google import issuer as google_issuer

    return {"apple": apple_credentials.can_sign, "google": google_issuer.has_issuer}


def install_http() -> list[APIRouter]:
    """install(), and the HTTP side: the API authenticators; returns the routers."""
    from loyalwallet.analytics import pages as analytics_pages
    from loyalwallet.api import deps as api_deps
    from loyalwallet.enrollment import webcard

    install()
    api_deps.EXTRA_AUTHENTICATORS[:] = api_authenticators()
    analytics_pages.TILES[:] = DASHBOARD_TILES
    webcard.WALLET_READY.clear()
    webcard.WALLET_READY.update(wallet_ready())
    return routers()
