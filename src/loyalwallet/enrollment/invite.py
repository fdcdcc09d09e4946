"""Inviting guests: what the owner prints or pastes to bring guests to a programme.

A programme's own join link (`/join/{id}`) works without any channel; a channel's QR and
table tent carry its short link (`/j/{token}`), which counts scans. Both are drawn by
`enrollment.printing`. The first download of a QR code or a tent is recorded on the
merchant (`settings["invite"]`): the setup checklist's "counter QR printed".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalwallet.db import for_update, utcnow
from loyalwallet.enrollment import printing, rules, webcard
from loyalwallet.enrollment.channels import get_channel
from loyalwallet.enrollment.forms import form_settings, widget_snippets
from loyalwallet.enrollment.links import base_url, join_path
from loyalwallet.enrollment.models import Channel
from loyalwallet.errors import not_found
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.models import Merchant
from loyalwallet.merchants.service import audit, get_merchant
from loyalwallet.programs.assets import load as load_asset
from loyalwallet.programs.models import Program
from loyalwallet.programs.service import get_program, rules_of
from loyalwallet.text import LANGUAGES, gettext_for, translate

# What can be downloaded: the QR code as SVG or PNG, the A6 tent, the A4 sheet of four.
KINDS = ("qr_svg", "qr_png", "tent_a6", "tent_a4")


def program_join_url(program_id: int) -> str:
    return base_url() + join_path(program_id)


def short_url(channel: Channel) -> str:
    return f"{base_url()}/j/{channel.token}"


@dataclass(frozen=True)
class Target:
    """Where a printed QR leads: the programme's join link, or a channel's short link."""

    program: Program
    channel: Channel | None
    url: str

    @property
    def slug(self) -> str:
        return self.channel.slug if self.channel else f"program-{self.program.id}"


def target(session: Session, merchant_id: int, program_id: int, channel_id: int | None) -> Target:
    """The programme (this merchant's) and, if named, one of its channels."""
    program = get_program(session, merchant_id, program_id)
    if channel_id is None:
        return Target(program, None, program_join_url(program.id))
    channel = get_channel(session, merchant_id, channel_id)
    if channel.program_id != program.id:
        raise not_found("channel")
    return Target(program, channel, short_url(channel))


def channel_target(session: Session, merchant_id: int, channel_id: int) -> Target:
    channel = get_channel(session, merchant_id, channel_id)
    return target(session, merchant_id, channel.program_id, channel.id)


def tent_language(merchant: Merchant, lang: str | None) -> str:
    if lang in LANGUAGES:
        return str(lang)
    return merchant.locale if merchant.locale in LANGUAGES else "ru"


def tent(session: Session, merchant_id: int, where: Target, lang: str | None = None) -> printing.Tent:
    """The table tent's words and look: the channel's offer, else the join form's, else
    the first line the rules promise; the card design's colours and logo."""
    merchant = get_merchant(session, merchant_id)
    language = tent_language(merchant, lang)
    _ = gettext_for(language)
    program = where.program
    look = webcard.brand(program, merchant)
    settings = form_settings(session, program)
    lines = [translate(language, msg, params) for msg, params in rules.offer_lines(rules_of(program))]
    offer = where.channel.offer if where.channel else None
    headline = offer or settings.offer or (lines[0] if lines else program.name)
    design = webcard.design_of(program)
    logo = load_asset(session, merchant.id, design.images.logo) if design.images.logo else None
    return printing.Tent(
        url=where.url,
        short_url=where.url,
        title=look["logo_text"],
        offer=headline,
        details=[line for line in lines if line != headline][:2],
        call_to_action=_("Scan to get your loyalty card"),
        hint=_("Apple Wallet, Google Wallet or right in the browser. It takes a minute."),
        background=look["background"],
        foreground=look["foreground"],
        logo=logo.data if logo else None,
    )


@dataclass(frozen=True)
class File:
    content: bytes
    media_type: str
    filename: str


def download(
    session: Session, merchant_id: int, where: Target, kind: str, lang: str | None = None, scale: int = 10
) -> File:
    """One of KINDS for a target, with the file name it is saved under."""
    name = where.slug
    if kind == "qr_svg":
        return File(printing.qr_svg(where.url, scale=scale).encode(), "image/svg+xml", f"qr-{name}.svg")
    if kind == "qr_png":
        return File(printing.qr_png(where.url, scale=scale), "image/png", f"qr-{name}.png")
    words = tent(session, merchant_id, where, lang)
    if kind == "tent_a4":
        return File(printing.tent_sheet(words), "application/pdf", f"table-tents-a4-{name}.pdf")
    return File(printing.table_tent(words), "application/pdf", f"table-tent-{name}.pdf")


def printed(merchant: Merchant) -> dict[str, Any] | None:
    """When a QR code or a table tent was first downloaded, and which, if ever."""
    info = (merchant.settings or {}).get("invite") or {}
    return dict(info) if info.get("printed_at") else None


def was_printed(session: Session, merchant_id: int) -> bool:
    return printed(get_merchant(session, merchant_id)) is not None


def record_download(session: Session, actor: Actor, where: Target, kind: str) -> bool:
    """Remember the first download of a QR code or a tent (the merchant row locked, so two
    at once record one). Returns whether this one was the first."""
    session.execute(for_update(select(Merchant.id).where(Merchant.id == actor.merchant_id)))
    merchant = get_merchant(session, actor.merchant_id)
    session.refresh(merchant)
    if printed(merchant) is not None:
        return False
    info = {
        "printed_at": utcnow().isoformat(),
        "what": kind,
        "program_id": where.program.id,
        "channel_id": where.channel.id if where.channel else None,
    }
    merchant.settings = {**(merchant.settings or {}), "invite": info}
    audit(session, actor, "invite.download", "program", where.program.id, {"what": kind})
    return True


def printed_at(session: Session, merchant_id: int) -> dt.datetime | None:
    info = printed(get_merchant(session, merchant_id))
    return dt.datetime.fromisoformat(info["printed_at"]) if info else None


def widget(where: Target) -> dict[str, str]:
    """The website snippets: an iframe of the join page, or the script that opens it."""
    return widget_snippets(where.program.id, where.channel.slug if where.channel else None)
