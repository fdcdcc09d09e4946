"""Registers the webhook fan-out (a business-event listener) and the delivery handler."""

from __future__ import annotations

from loyalwallet.outbox.core_handlers import EVENT_LISTENERS
from loyalwallet.outbox.handlers import handles
from loyalwallet.webhooks import service

handles(service.TOPIC)(service.deliver)
if service.fan_out not in EVENT_LISTENERS:
    EVENT_LISTENERS.append(service.fan_out)
