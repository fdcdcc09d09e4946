"""Outbox handlers and periodic jobs of campaigns and triggers."""

from __future__ import annotations

from loyalwallet.campaigns import service, triggers
from loyalwallet.outbox.core_handlers import EVENT_LISTENERS
from loyalwallet.outbox.handlers import every, handles

handles("campaign.start")(service.start)
handles("campaign.deliver")(service.deliver)
handles("trigger.run")(triggers.run)
handles("trigger.fire")(triggers.fire)
every("campaign-triggers", 60.0)(triggers.schedule_due)
every("campaign-finish", 120.0)(service.finish_stragglers)
if triggers.on_event not in EVENT_LISTENERS:
    EVENT_LISTENERS.append(triggers.on_event)
