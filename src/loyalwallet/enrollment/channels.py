"""Channels: where guests come from (a QR on a table, a link in a bio), with their UTM
tags, short links, scans and per-channel figures.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from loyalwallet import crypto
from loyalwallet.cards.models import Card
from loyalwallet.enrollment import rules
from loyalwallet.enrollment.forms import widget_snippets
from loyalwallet.enrollment.links import base_url, join_path
from loyalwallet.enrollment.models import Channel, Join
from loyalwallet.errors import DomainError, Explained, not_found
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.service import audit, get_location
from loyalwallet.programs.models import Program
from loyalwallet.programs.service import get_program


def _unique_slug(session: Session, merchant_id: int, kind: str) -> str:
    stem = kind.replace("_", "-")
    taken = set(
        session.scalars(
            select(Channel.slug).where(Channel.merchant_id == merchant_id, Channel.slug.like(f"{stem}%"))
        )
    )
    n = 1
    while f"{stem}-{n}" in taken:
        n += 1
    return f"{stem}-{n}"


def create_channel(session: Session, actor: Actor, data: dict[str, Any]) -> Channel:
    actor.require("manager")
    program = get_program(session, actor.merchant_id, data["program_id"])
    if program.status != "active":
        raise DomainError("program_archived", "the program is archived")
    kind = data["kind"]
    if kind not in rules.CHANNEL_KINDS:
        raise DomainError("validation_error", "unknown channel kind", field="kind")
    slug = data.get("slug") or _unique_slug(session, actor.merchant_id, kind)
    if not rules.SLUG_RE.match(slug):
        raise DomainError("validation_error", "slug: 2-40 lowercase letters, digits and dashes", field="slug")
    if session.scalar(
        select(Channel.id).where(Channel.merchant_id == actor.merchant_id, Channel.slug == slug)
    ):
        raise Explained("conflict", "a channel with slug {slug!r} exists", slug=slug, extra={"field": "slug"})
    if data.get("location_id") is not None:
        get_location(session, actor.merchant_id, data["location_id"])
    source, medium = rules.CHANNEL_KINDS[kind]
    channel = Channel(
        merchant_id=actor.merchant_id,
        program_id=program.id,
        location_id=data.get("location_id"),
        kind=kind,
        name=data["name"].strip(),
        slug=slug,
        token=crypto.token(6),
        utm_source=data.get("utm_source") or source or slug,
        utm_medium=data.get("utm_medium") or medium,
        utm_campaign=data.get("utm_campaign"),
        offer=data.get("offer") or None,
        invitation=bool(data.get("invitation", False)),
        status="active",
        scans=0,
    )
    session.add(channel)
    session.flush()
    audit(session, actor, "channel.create", "channel", channel.id, {"kind": kind, "slug": slug})
    return channel


def get_channel(session: Session, merchant_id: int, channel_id: int) -> Channel:
    channel = session.get(Channel, channel_id)
    if channel is None or channel.merchant_id != merchant_id:
        raise not_found("channel")
    return channel


def update_channel(session: Session, actor: Actor, channel: Channel, changes: dict[str, Any]) -> Channel:
    actor.require("manager")
    for name in ("name", "utm_source", "utm_medium", "utm_campaign", "offer", "invitation", "status"):
        if name in changes and changes[name] is not None:
            value = changes[name]
            setattr(channel, name, value.strip() if isinstance(value, str) else value)
    if "location_id" in changes:
        if changes["location_id"] is not None:
            get_location(session, actor.merchant_id, changes["location_id"])
        channel.location_id = changes["location_id"]
    audit(
        session,
        actor,
        "channel.update",
        "channel",
        channel.id,
        {k: v for k, v in changes.items() if v is not None},
    )
    return channel


def list_channels(
    session: Session, merchant_id: int, program_id: int | None, archived: bool
) -> list[Channel]:
    stmt = select(Channel).where(Channel.merchant_id == merchant_id).order_by(Channel.id)
    if program_id is not None:
        stmt = stmt.where(Channel.program_id == program_id)
    if not archived:
        stmt = stmt.where(Channel.status == "active")
    return list(session.scalars(stmt))


def channel_join_path(channel: Channel) -> str:
    return join_path(
        channel.program_id,
        channel=channel.slug,
        utm_source=channel.utm_source,
        utm_medium=channel.utm_medium,
        utm_campaign=channel.utm_campaign,
    )


def channel_stats(session: Session, channels: list[Channel]) -> dict[int, dict[str, int]]:
    """Cards issued and joins completed per channel (one query each)."""
    if not channels:
        return {}
    merchant_id = channels[0].merchant_id
    slugs: dict[tuple[int, str | None], int] = {(c.program_id, c.slug): c.id for c in channels}
    cards = session.execute(
        select(Card.program_id, Card.channel, func.count())
        .where(Card.merchant_id == merchant_id, Card.channel.in_([c.slug for c in channels]))
        .group_by(Card.program_id, Card.channel)
    ).all()
    joins = session.execute(
        select(Join.channel_id, func.count())
        .where(Join.merchant_id == merchant_id, Join.channel_id.in_([c.id for c in channels]))
        .group_by(Join.channel_id)
    ).all()
    out = {c.id: {"scans": c.scans, "cards": 0, "joins": 0} for c in channels}
    for program_id, slug, n in cards:
        cid = slugs.get((program_id, slug))
        if cid is not None:
            out[cid]["cards"] = int(n)
    for cid, n in joins:
        if cid is not None:  # never: the query selects only these channels
            out[cid]["joins"] = int(n)
    return out


def channel_view(channel: Channel, stats: dict[str, int] | None = None) -> dict[str, Any]:
    base = base_url()
    api = f"{base}/api/v1/channels/{channel.id}"
    return {
        "id": channel.id,
        "program_id": channel.program_id,
        "location_id": channel.location_id,
        "kind": channel.kind,
        "name": channel.name,
        "slug": channel.slug,
        "utm_source": channel.utm_source,
        "utm_medium": channel.utm_medium,
        "utm_campaign": channel.utm_campaign,
        "offer": channel.offer,
        "invitation": channel.invitation,
        "status": channel.status,
        "short_url": f"{base}/j/{channel.token}",
        "join_url": base + channel_join_path(channel),
        "qr_svg_url": f"{api}/qr.svg",
        "qr_png_url": f"{api}/qr.png",
        "table_tent_pdf_url": f"{api}/table-tent.pdf",
        "table_tent_a4_pdf_url": f"{api}/table-tent.pdf?sheet=a4",
        "widget": widget_snippets(channel.program_id, channel.slug),
        "stats": stats or {"scans": channel.scans, "cards": 0, "joins": 0},
        "created_at": channel.created_at.isoformat(),
    }


def channel_by_token(session: Session, token: str) -> Channel:
    channel = session.scalar(select(Channel).where(Channel.token == token))
    if channel is None:
        raise not_found("link")
    return channel


def count_scan(session: Session, channel: Channel) -> None:
    session.execute(update(Channel).where(Channel.id == channel.id).values(scans=Channel.scans + 1))


def channel_for_join(session: Session, program: Program, slug: str | None) -> Channel | None:
    """The active channel a join link names, if it belongs to this program."""
    if not slug or len(slug) > 64:
        return None
    return session.scalar(
        select(Channel).where(
            Channel.merchant_id == program.merchant_id,
            Channel.program_id == program.id,
            Channel.slug == slug,
            Channel.status == "active",
        )
    )
