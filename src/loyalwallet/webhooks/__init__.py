"""Webhooks for CRM/POS: merchant URLs receive signed business events through the outbox."""
