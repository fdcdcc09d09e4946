"""JSON API of enrollment for staff and integrations: channels (with QR codes and the
printable table tent) and each program's join-form settings. Owner or manager."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import Response

from loyalwallet import db
from loyalwallet.api.deps import actor as any_actor
from loyalwallet.api.deps import manager
from loyalwallet.api.responses import FastJSON
from loyalwallet.cards.views import card_view
from loyalwallet.enrollment import channels as channel_service
from loyalwallet.enrollment import invite, rules
from loyalwallet.enrollment.forms import form_settings, form_view, save_form_settings
from loyalwallet.enrollment.join import (
    JoinRequest,
    challenge_phone,
    get_challenge,
    plastic_code,
    resend,
    start_join,
    verify,
)
from loyalwallet.enrollment.schemas import ChannelIn, ChannelPatch, CodeIn, EnrollmentIn
from loyalwallet.errors import DomainError
from loyalwallet.merchants.actors import Actor
from loyalwallet.programs.service import get_program

router = APIRouter(prefix="/api/v1", tags=["enrollment"])

EXAMPLE_FORM: dict[str, Any] = {
    "fields": [
        {"key": "name", "required": True},
        {"key": "phone"},
        {"key": "birthday"},
        {
            "key": "custom",
            "id": "drink",
            "labels": {"ru": "Любимый напиток", "en": "Favourite drink"},
            "options": ["Espresso", "Latte", "Tea"],
        },
    ],
    "offer": "100 welcome points",
    "privacy_url": "https://example.com/privacy",
    "ask_marketing": True,
}


@router.post(
    "/channels", status_code=201, summary="Create a channel: its own link, QR and table tent (manager+)"
)
def create_channel(body: ChannelIn, who: Actor = Depends(manager)) -> Response:
    with db.transaction() as session:
        channel = channel_service.create_channel(session, who, body.model_dump())
        return FastJSON(channel_service.channel_view(channel), status_code=201)


@router.get("/channels", summary="Channels with their numbers: scans, cards, joins (manager+)")
def list_channels(
    program_id: int | None = Query(None),
    archived: bool = Query(False),
    who: Actor = Depends(manager),
) -> dict[str, Any]:
    with db.read() as session:
        channels = channel_service.list_channels(session, who.merchant_id, program_id, archived)
        stats = channel_service.channel_stats(session, channels)
        return {"items": [channel_service.channel_view(c, stats.get(c.id)) for c in channels]}


@router.get("/channels/{channel_id}", summary="A channel (manager+)")
def get_channel(channel_id: int, who: Actor = Depends(manager)) -> dict[str, Any]:
    with db.read() as session:
        channel = channel_service.get_channel(session, who.merchant_id, channel_id)
        return channel_service.channel_view(
            channel, channel_service.channel_stats(session, [channel]).get(channel.id)
        )


@router.patch("/channels/{channel_id}", summary="Change or archive a channel (manager+)")
def patch_channel(channel_id: int, body: ChannelPatch, who: Actor = Depends(manager)) -> dict[str, Any]:
    with db.transaction() as session:
        channel = channel_service.get_channel(session, who.merchant_id, channel_id)
        channel_service.update_channel(session, who, channel, body.model_dump(exclude_unset=True))
        return channel_service.channel_view(channel)


@router.delete("/channels/{channel_id}", summary="Archive a channel; its cards keep it (manager+)")
def delete_channel(channel_id: int, who: Actor = Depends(manager)) -> dict[str, Any]:
    with db.transaction() as session:
        channel = channel_service.get_channel(session, who.merchant_id, channel_id)
        channel_service.update_channel(session, who, channel, {"status": "archived"})
        return channel_service.channel_view(channel)


def _channel_file(
    channel_id: int, who: Actor, kind: str, lang: str | None = None, scale: int = 10
) -> Response:
    """A channel's QR code or table tent; the first one downloaded is recorded (the setup
    checklist's "counter QR printed")."""
    with db.read() as session:
        where = invite.channel_target(session, who.merchant_id, channel_id)
        file = invite.download(session, who.merchant_id, where, kind, lang, scale)
        first = not invite.was_printed(session, who.merchant_id)
    if first:
        with db.transaction() as session:
            invite.record_download(session, who, where, kind)
    if kind.startswith("qr_"):
        return Response(
            file.content, media_type=file.media_type, headers={"Cache-Control": "private, max-age=3600"}
        )
    return Response(
        file.content,
        media_type=file.media_type,
        headers={"Content-Disposition": f'inline; filename="{file.filename}"'},
    )


@router.get("/channels/{channel_id}/qr.svg", summary="The channel's QR code, SVG (manager+)")
def channel_qr_svg(
    channel_id: int, scale: int = Query(10, ge=1, le=40), who: Actor = Depends(manager)
) -> Response:
    return _channel_file(channel_id, who, "qr_svg", scale=scale)


@router.get("/channels/{channel_id}/qr.png", summary="The channel's QR code, PNG (manager+)")
def channel_qr_png(
    channel_id: int, scale: int = Query(10, ge=1, le=40), who: Actor = Depends(manager)
) -> Response:
    return _channel_file(channel_id, who, "qr_png", scale=scale)


@router.get(
    "/channels/{channel_id}/table-tent.pdf",
    summary="A printable A6 table tent with the offer and QR (manager+); ?sheet=a4: four on an A4 sheet",
)
def table_tent(
    channel_id: int,
    lang: str | None = Query(None, pattern="^(ru|en)$"),
    sheet: str | None = Query(None, pattern="^(a6|a4)$"),
    who: Actor = Depends(manager),
) -> Response:
    return _channel_file(channel_id, who, "tent_a4" if sheet == "a4" else "tent_a6", lang)


@router.get("/programs/{program_id}/join-form", summary="The program's join form settings")
def get_join_form(program_id: int, who: Actor = Depends(any_actor)) -> dict[str, Any]:
    with db.read() as session:
        program = get_program(session, who.merchant_id, program_id)
        return form_view(session, program, form_settings(session, program))


@router.put(
    "/programs/{program_id}/join-form", summary="Set the join form: fields, consents, offer (manager+)"
)
def put_join_form(
    program_id: int,
    body: dict[str, Any] = Body(..., examples=[EXAMPLE_FORM]),
    who: Actor = Depends(manager),
) -> dict[str, Any]:
    with db.transaction() as session:
        program = get_program(session, who.merchant_id, program_id)
        settings = save_form_settings(session, who, program, body)
        return form_view(session, program, settings)


# --- enrolment at the till, confirmed by the guest's SMS code ------------------------------


def _pending(session: Any, who: Actor, token: str) -> Any:
    challenge = get_challenge(session, token, lock=True)
    if challenge.merchant_id != who.merchant_id:
        raise DomainError("not_found", "code request not found")
    return challenge


def _pending_view(challenge: Any) -> dict[str, Any]:
    from loyalwallet.customers.phones import mask

    return {
        "token": challenge.token,
        "status": challenge.status,
        "phone": mask(challenge_phone(challenge)),
        "expires_at": challenge.expires_at.isoformat(),
        "resend_at": challenge.resend_at.isoformat(),
        "tries_left": max(0, rules.OTP_MAX_ATTEMPTS - challenge.attempts),
    }


@router.post(
    "/enrollments",
    status_code=202,
    summary="Start enrolling a guest at the till: an SMS code goes to their phone",
)
def start_enrollment(body: EnrollmentIn, who: Actor = Depends(any_actor)) -> Response:
    with db.transaction() as session:
        get_program(session, who.merchant_id, body.program_id)  # scoped to the caller
        plastic = (
            plastic_code(session, who.merchant_id, body.program_id, body.card_code)
            if body.card_code
            else None
        )
        values = {
            "phone": body.phone,
            "name": body.name or "",
            "email": body.email or "",
            "birthday": body.birthday.isoformat() if body.birthday else "",
        }
        req = JoinRequest(
            program_id=body.program_id,
            values=values,
            personal_data=body.personal_data_consent,
            marketing=body.marketing_consent,
            lang=body.lang,
            channel=body.channel,
            source="api",
            plastic=plastic,
        )
        # No per-IP limit: one till serves everybody. Per phone and per merchant apply.
        challenge = start_join(session, req)
        return FastJSON(_pending_view(challenge), status_code=202)


@router.post(
    "/enrollments/{token}/confirm", status_code=201, summary="Confirm with the code: the guest's card"
)
def confirm_enrollment(token: str, body: CodeIn, who: Actor = Depends(any_actor)) -> Response:
    with db.transaction() as session:
        _pending(session, who, token)
        outcome = verify(session, token, body.code)
        view = None
        if outcome.error is None:
            assert outcome.card is not None and outcome.program is not None
            view = card_view(session, outcome.card, outcome.program, created=outcome.created)
    if outcome.error is not None:  # the wrong try is counted (committed) first
        raise outcome.error
    return FastJSON(view, status_code=201 if outcome.created else 200)


@router.post("/enrollments/{token}/resend", summary="Send the guest a new code (after the wait)")
def resend_enrollment(token: str, who: Actor = Depends(any_actor)) -> dict[str, Any]:
    with db.transaction() as session:
        _pending(session, who, token)
        return _pending_view(resend(session, token, None))
