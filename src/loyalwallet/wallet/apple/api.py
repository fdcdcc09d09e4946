"""HTTP of Apple Wallet: the pass download links and the PassKit web service.

- GET /c/{public_token}/pass.pkpass: the card's signed pass (the card's apple_pass_url).
- GET /wallet/apple/coupons/{merchant_id}/{code}/{sig}/pass.pkpass: a coupon's pass.
- GET /g/{public_token}/pass.pkpass: a gift certificate's pass (its apple_pass_url).
- The web service Apple specifies, under webServiceURL = {base}/wallet/apple:
  POST   /v1/devices/{device}/registrations/{passTypeId}/{serial}   201 new, 200 known
  GET    /v1/devices/{device}/registrations/{passTypeId}?passesUpdatedSince=tag  200 / 204
  DELETE /v1/devices/{device}/registrations/{passTypeId}/{serial}   200
  GET    /v1/passes/{passTypeId}/{serial}   the pass, Last-Modified; 304 If-Modified-Since
  POST   /v1/log                            200
  Authorization: ApplePass <authenticationToken> on the pass routes; 401 otherwise.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from loyalwallet import db
from loyalwallet.api.responses import FastJSON
from loyalwallet.cards.models import Card
from loyalwallet.certificates.models import GiftCertificate
from loyalwallet.errors import DomainError, not_found
from loyalwallet.programs.models import Program
from loyalwallet.wallet.apple import service
from loyalwallet.wallet.apple.pkpass import MEDIA_TYPE
from loyalwallet.web.templating import render

log = logging.getLogger("loyalwallet.apple.device")
router = APIRouter(tags=["apple wallet"])
PREFIX = "/wallet/apple/v1"

# The last device log lines, for the admin page (devices report install/update errors here).
DEVICE_LOGS: deque[str] = deque(maxlen=200)


class RegistrationIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    pushToken: Annotated[str, Field(max_length=1000)]


class LogIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    logs: Annotated[list[Any], Field(max_length=100)] = []


def _pass_response(built: service.BuiltPass, request: Request) -> Response:
    modified = service.last_modified(built.last_modified)
    headers = {
        "Last-Modified": service.http_date(modified),
        "ETag": built.etag,
        "Cache-Control": "no-cache",
    }
    if request.headers.get("if-none-match") == built.etag:
        return Response(status_code=304, headers=headers)
    headers["Content-Disposition"] = 'attachment; filename="card.pkpass"'
    return Response(built.data, media_type=MEDIA_TYPE, headers=headers)


@router.get("/c/{public_token}/pass.pkpass", summary="The card's Apple Wallet pass (public link)")
def card_pass(public_token: str, request: Request) -> Response:
    if not (8 <= len(public_token) <= 64):
        raise not_found("card")
    with db.read() as session:
        row = session.execute(
            select(Card, Program)
            .join(Program, Program.id == Card.program_id)
            .where(Card.public_token == public_token)
        ).first()
        if row is None:
            raise not_found("card")
        card, program = row
        if service.not_modified(card.pass_updated_at, request.headers.get("if-modified-since")):
            return Response(status_code=304)
        try:
            built = service.card_pass(session, card, program)
        except DomainError as exc:
            # No certificate: a person with a browser gets a page in their language
            # that leads to the web card; a program keeps the problem+json.
            if exc.code != "unavailable" or "text/html" not in request.headers.get("accept", ""):
                raise
            return render(
                request, "apple/notice.html", {"web_card_url": f"/c/{card.public_token}"}, status=503
            )
    return _pass_response(built, request)


@router.get("/g/{public_token}/pass.pkpass", summary="A gift certificate's Apple Wallet pass (public link)")
def gift_pass(public_token: str, request: Request) -> Response:
    if not (8 <= len(public_token) <= 64):
        raise not_found("gift certificate")
    with db.read() as session:
        cert = session.scalar(select(GiftCertificate).where(GiftCertificate.public_token == public_token))
        if cert is None:
            raise not_found("gift certificate")
        try:
            built = service.gift_pass(session, cert)
        except DomainError as exc:
            if exc.code != "unavailable" or "text/html" not in request.headers.get("accept", ""):
                raise
            return render(request, "apple/notice.html", {"web_card_url": f"/g/{public_token}"}, status=503)
    return _pass_response(built, request)


@router.get(
    "/wallet/apple/coupons/{merchant_id}/{code}/{sig}/pass.pkpass",
    summary="A coupon's Apple Wallet pass (signed public link)",
)
def coupon_pass(merchant_id: int, code: str, sig: str, request: Request) -> Response:
    with db.read() as session:
        coupon = service.coupon_by_link(session, merchant_id, code, sig)
        built = service.coupon_pass(session, coupon)
    return _pass_response(built, request)


@router.post(
    PREFIX + "/devices/{device_id}/registrations/{pass_type_id}/{serial}",
    summary="PassKit: register a device for a pass's updates",
    responses={201: {"description": "registered"}, 200: {"description": "already registered"}},
)
def register(
    device_id: str,
    pass_type_id: str,
    serial: str,
    body: RegistrationIn,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    with db.transaction() as session:
        created = service.register(session, device_id, pass_type_id, serial, authorization, body.pushToken)
    return Response(status_code=201 if created else 200)


@router.get(
    PREFIX + "/devices/{device_id}/registrations/{pass_type_id}",
    summary="PassKit: serial numbers of the device's passes changed since a tag",
)
def serials(
    device_id: str,
    pass_type_id: str,
    passesUpdatedSince: Annotated[str | None, Query(max_length=2000)] = None,
) -> Response:
    with db.read() as session:
        found, tag = service.serials_since(session, device_id, pass_type_id, passesUpdatedSince)
    if not found:
        return Response(status_code=204)
    return FastJSON({"serialNumbers": found, "lastUpdated": tag})


@router.delete(
    PREFIX + "/devices/{device_id}/registrations/{pass_type_id}/{serial}",
    summary="PassKit: unregister a device",
)
def unregister(
    device_id: str,
    pass_type_id: str,
    serial: str,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    with db.transaction() as session:
        service.unregister(session, device_id, pass_type_id, serial, authorization)
    return Response(status_code=200)


@router.get(PREFIX + "/passes/{pass_type_id}/{serial}", summary="PassKit: the latest version of a pass")
def latest(
    pass_type_id: str,
    serial: str,
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    with db.read() as session:
        ref = service.authenticate(session, pass_type_id, serial, authorization)
        if ref.card is not None and service.not_modified(
            ref.card.pass_updated_at, request.headers.get("if-modified-since")
        ):
            return Response(status_code=304)
        built = service.build(session, ref)
    if service.not_modified(built.last_modified, request.headers.get("if-modified-since")):
        return Response(status_code=304)
    return _pass_response(built, request)


# Anyone may post here (Apple sends no auth), so it is bounded: a few lines a request,
# each cut short, and a few requests a minute per address.
LOG_LINES_PER_REQUEST = 20
LOG_LINE_CHARS = 1000
LOG_REQUESTS_PER_MINUTE = 30
_log_hits: dict[str, deque[float]] = {}


def _log_rate_ok(address: str) -> bool:
    now = time.monotonic()
    if len(_log_hits) > 10_000:  # forget idle addresses; never grows without bound
        for key in [k for k, v in _log_hits.items() if not v or now - v[-1] > 60]:
            _log_hits.pop(key, None)
    hits = _log_hits.setdefault(address, deque())
    while hits and now - hits[0] > 60:
        hits.popleft()
    if len(hits) >= LOG_REQUESTS_PER_MINUTE:
        return False
    hits.append(now)
    return True


@router.post(
    PREFIX + "/log",
    summary="PassKit: error messages from devices",
    responses={429: {"description": "Too many log posts from this address"}},
)
def device_log(body: LogIn, request: Request) -> dict[str, Any]:
    address = request.client.host if request.client else "?"
    if not _log_rate_ok(address):
        raise DomainError("rate_limited", "too many log posts from this address; try again in a minute")
    kept = body.logs[:LOG_LINES_PER_REQUEST]
    for entry in kept:
        line = "".join(ch if ch.isprintable() else " " for ch in str(entry))[:LOG_LINE_CHARS]
        DEVICE_LOGS.append(line)
        log.warning("device: %s", line)
    return {"logged": len(kept)}
