"""Telegram delivery and the daily digest job."""

from __future__ import annotations

from loyalwallet.fraud import service
from loyalwallet.outbox.handlers import every, handles

handles(service.TELEGRAM_TOPIC)(service.deliver_telegram)
every("fraud-digest", 300.0)(service.send_digests)
