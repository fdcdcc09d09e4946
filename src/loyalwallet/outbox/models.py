"""Outbox rows. Written in the business transaction; a worker delivers them at least once."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, SmallInteger, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from loyalwallet.db import Base, BigID, IdPK, Timestamp

STATUSES = ("pending", "done", "dead")

# Lanes: the worker claims every due row of a lower number before any of a higher one.
INTERACTIVE = 0  # what follows a person's action (a purchase's card update, an SMS code)
BULK = 1  # campaign and trigger waves, and everything their rows queue in turn


class OutboxMessage(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_merchant_status", "merchant_id", "status", "id"),
        # The claim: pending rows by lane, then due time; also the retention's range of
        # delivered rows (lane by lane) and the counts by status.
        Index("ix_outbox_claim", "status", "priority", "next_attempt_at"),
    )

    id: Mapped[IdPK]
    merchant_id: Mapped[int | None] = mapped_column(BigID, ForeignKey("merchants.id"))
    # What to do: "card.changed", "apple.push", "google.patch", "webhook", "sms", ...
    topic: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=12)
    priority: Mapped[int] = mapped_column(SmallInteger, default=INTERACTIVE, server_default=text("0"))
    next_attempt_at: Mapped[Timestamp]
    # A claimed row is invisible to other workers until this time (crash recovery).
    locked_until: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[Timestamp]
    delivered_at: Mapped[dt.datetime | None]


class PeriodicRun(Base):
    """When each periodic job last started. Shared by every worker process (the ones
    embedded in `serve` and the `loyalwallet worker` ones), so a job runs once per
    interval across all of them instead of once per process."""

    __tablename__ = "periodic_runs"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[dt.datetime]


class WorkerHeartbeat(Base):
    """A worker loop says it is alive (every few seconds), one row per process on any
    host: `doctor`, /metrics and the admin read them. Rows silent for a day are swept."""

    __tablename__ = "worker_heartbeats"

    # host:pid
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # "worker" (own process) or "embedded" (in serve)
    started_at: Mapped[dt.datetime]
    beat_at: Mapped[dt.datetime]
    # Rows this process has handled since it started.
    handled: Mapped[int] = mapped_column(Integer, default=0)
