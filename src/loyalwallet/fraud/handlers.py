"""Telegram delivery, the daily digest job, and polling for chats being linked."""

from __future__ import annotations

from loyalwallet.fraud import linking, service
from loyalwallet.outbox.handlers import every, handles

handles(service.TELEGRAM_TOPIC)(service.deliver_telegram)
every("fraud-digest", 300.0)(service.send_digests)
# Cheap when no code is pending (one query); reads the bots' updates when one is.
every("telegram-link", 5.0)(linking.poll_pending)
