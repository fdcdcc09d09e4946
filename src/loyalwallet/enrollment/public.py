"""Public pages: the join form, the code check, the success page, channel short links,
share links, invitation cards and the web card (a PWA).

Pages work without JavaScript (plain forms and redirects); scripts only add comfort.
Errors are pages in the guest's language, never JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from loyalwallet import crypto, db
from loyalwallet.cards.views import card_view
from loyalwallet.config import env
from loyalwallet.enrollment import printing, rules, webcard
from loyalwallet.enrollment.channels import channel_by_token, channel_join_path, count_scan
from loyalwallet.enrollment.forms import consent_texts, form_settings
from loyalwallet.enrollment.invitations import create_invitation, merged_into
from loyalwallet.enrollment.join import (
    JoinRequest,
    Verified,
    challenge_data,
    challenge_phone,
    get_challenge,
    resend,
    sms_regions,
    start_join,
    verify,
)
from loyalwallet.enrollment.links import base_url, join_path, public_program
from loyalwallet.enrollment.referral import referrer_for
from loyalwallet.enrollment.sms import config_for, console
from loyalwallet.errors import DomainError
from loyalwallet.programs.assets import load as load_asset
from loyalwallet.web.requests import client_ip
from loyalwallet.web.templating import language, render

router = APIRouter(include_in_schema=False)

DEVICE_COOKIE = "lw_device"
JOIN_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; frame-ancestors *; form-action 'self'; base-uri 'none'"
)
CARD_CSP = JOIN_CSP.replace("frame-ancestors *", "frame-ancestors 'none'")


def _secure(response: Response, *, frame: bool = False, private: bool = False) -> Response:
    response.headers["Content-Security-Policy"] = JOIN_CSP if frame else CARD_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Card and code URLs are bearer links: never hand them to other sites as Referer.
    response.headers["Referrer-Policy"] = "no-referrer"
    if private:
        response.headers["Cache-Control"] = "private, no-store"
        response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _error_page(request: Request, error: DomainError, *, lang: str | None = None) -> Response:
    status = {"not_found": 404, "program_archived": 410}.get(error.code, error.status)
    response = render(request, "enrollment/error.html", {"error": error}, status=status, lang=lang)
    return _secure(response, frame=True, private=True)


def _device_cookie(request: Request, response: Response) -> None:
    if not request.cookies.get(DEVICE_COOKIE):
        response.set_cookie(
            DEVICE_COOKIE, crypto.token(16), max_age=2 * 365 * 86400, httponly=True, samesite="lax"
        )


# --- the join form ----------------------------------------------------------------------


def _join_context(program_id: int, lang: str) -> dict[str, Any]:
    with db.read() as session:
        program, merchant = public_program(session, program_id)
        settings = form_settings(session, program)
        personal, marketing = consent_texts(settings, merchant, lang)
        return {
            "program": program,
            "brand": webcard.brand(program, merchant),
            "offer": webcard.offer(program, settings.offer),
            "settings": settings,
            "personal_text": personal,
            "marketing_text": marketing,
            "genders": rules.GENDERS,
            "regions": ", ".join(sms_regions() or []),
            "today": db.utcnow().date().isoformat(),
        }


def _attribution(params: Any) -> dict[str, Any]:
    return {
        "channel": (params.get("channel") or "")[:64] or None,
        "utm": {k: (params.get(k) or "")[:100] or None for k in rules.UTM_KEYS},
        "ref": (params.get("ref") or "")[:40] or None,
        "invite": (params.get("invite") or "")[:64] or None,
        "embed": params.get("embed") == "1",
    }


@router.get("/join/{program_id:int}")
def join_page(request: Request, program_id: int) -> Response:
    lang = language(request)
    try:
        context = _join_context(program_id, lang)
    except DomainError as exc:
        return _error_page(request, exc, lang=lang)
    context.update(values={}, errors={}, attribution=_attribution(request.query_params), problem=None)
    context["referred"] = bool(context["attribution"]["ref"])
    response = render(request, "enrollment/join.html", context, lang=lang)
    _device_cookie(request, response)
    return _secure(response, frame=True, private=True)


@router.post("/join/{program_id:int}")
async def join_submit(request: Request, program_id: int) -> Response:
    form = await request.form()
    lang = language(request)
    values = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    attribution = _attribution(values)
    req = JoinRequest(
        program_id=program_id,
        values=values,
        personal_data=values.get("personal_data") == "yes",
        marketing=values.get("marketing") == "yes",
        lang=lang,
        channel=attribution["channel"],
        utm=attribution["utm"],
        ref=attribution["ref"],
        invite=attribution["invite"],
        embed=attribution["embed"],
        ip=client_ip(request),
        device_id=request.cookies.get(DEVICE_COOKIE),
        user_agent=request.headers.get("user-agent"),
        honeypot=values.get("website"),
    )

    def start() -> str:
        with db.transaction() as session:
            return start_join(session, req).token

    try:
        token = await run_in_threadpool(start)
    except DomainError as exc:
        if exc.code in ("not_found", "program_archived"):
            return _error_page(request, exc, lang=lang)
        try:
            context = await run_in_threadpool(_join_context, program_id, lang)
        except DomainError as gone:
            return _error_page(request, gone, lang=lang)
        context.update(
            values=values,
            errors=exc.extra.get("fields", {}),
            attribution=attribution,
            problem=exc if exc.code == "rate_limited" else None,
            referred=bool(attribution["ref"]),
        )
        status = 429 if exc.code == "rate_limited" else 422
        return _secure(render(request, "enrollment/join.html", context, status=status, lang=lang), frame=True)
    return RedirectResponse(f"/join/verify/{token}", status_code=303)


# --- the code ---------------------------------------------------------------------------


def _verify_context(token: str, now: dt.datetime | None = None) -> dict[str, Any]:
    from loyalwallet.customers.phones import mask

    now = now or db.utcnow()
    with db.read() as session:
        challenge = get_challenge(session, token)
        program, merchant = public_program(session, challenge.program_id)
        data = challenge_data(challenge)
        phone = challenge_phone(challenge)
        context: dict[str, Any] = {
            "token": token,
            "program": program,
            "brand": webcard.brand(program, merchant),
            "phone": mask(phone),
            "status": challenge.status,
            "resend_in": max(0, int((challenge.resend_at - now).total_seconds() + 0.999)),
            "tries_left": max(0, rules.OTP_MAX_ATTEMPTS - challenge.attempts),
            "expired": now >= challenge.expires_at,
            "embed": data.get("embed", False),
            "demo_code": None,
        }
    if config_for(merchant).provider == "console" and env("SMS_CONSOLE_SHOW_CODE", "0") == "1":
        # Development only (the demo sets it): show what the console "sent".
        sent = console.last_to(phone)
        context["demo_code"] = sent.text if sent else None
    return context


def _render_verify(
    request: Request,
    token: str,
    *,
    problem: DomainError | None = None,
    status: int = 200,
    notice: str | None = None,
) -> Response:
    lang = language(request)
    try:
        context = _verify_context(token)
    except DomainError as exc:
        return _error_page(request, exc, lang=lang)
    if context["status"] == "verified":
        return RedirectResponse(f"/join/done/{token}", status_code=303)
    context.update(problem=problem, notice=notice)
    return _secure(
        render(request, "enrollment/verify.html", context, status=status, lang=lang), frame=True, private=True
    )


@router.get("/join/verify/{token}")
def verify_page(request: Request, token: str) -> Response:
    return _render_verify(request, token, notice=request.query_params.get("notice"))


@router.post("/join/verify/{token}")
async def verify_submit(request: Request, token: str) -> Response:
    form = await request.form()
    code = str(form.get("code") or "")[:20]
    ip = client_ip(request)

    def check() -> Verified:
        with db.transaction() as session:
            return verify(session, token, code, ip)

    try:
        outcome = await run_in_threadpool(check)
    except DomainError as exc:
        return _error_page(request, exc)
    if outcome.error is not None:
        status = 429 if outcome.error.code == "otp_attempts_exceeded" else 422
        return await run_in_threadpool(
            lambda: _render_verify(request, token, problem=outcome.error, status=status)
        )
    return RedirectResponse(f"/join/done/{token}", status_code=303)


@router.post("/join/verify/{token}/resend")
def resend_code(request: Request, token: str) -> Response:
    try:
        with db.transaction() as session:
            resend(session, token, client_ip(request))
    except DomainError as exc:
        if exc.code in ("rate_limited", "conflict"):
            return _render_verify(
                request, token, problem=exc, status=429 if exc.code == "rate_limited" else 409
            )
        return _error_page(request, exc)
    return RedirectResponse(f"/join/verify/{token}?notice=sent", status_code=303)


@router.get("/join/done/{token}")
def done_page(request: Request, token: str) -> Response:
    lang = language(request)
    try:
        with db.read() as session:
            challenge = get_challenge(session, token)
            if challenge.status != "verified" or challenge.card_id is None:
                return RedirectResponse(f"/join/verify/{token}", status_code=303)
            card, program, merchant = webcard.load_card_by_id(session, challenge.card_id)
            data = challenge_data(challenge)
            context = {
                "card": card,
                "brand": webcard.brand(program, merchant, card.tier),
                "wallet": webcard.wallet_paths(session, card),
                "platform": rules.platform(request.headers.get("user-agent")),
                "outcome": challenge.outcome,
                "embed": data.get("embed", False),
                "card_url": base_url() + f"/c/{card.public_token}",
                "card_qr": printing.qr_svg(base_url() + f"/c/{card.public_token}", scale=4, inline=True),
                "view": card_view(session, card, program, with_customer=False),
                "program_kind": program.kind,
                "currency": merchant.currency,
            }
    except DomainError as exc:
        return _error_page(request, exc, lang=lang)
    return _secure(render(request, "enrollment/done.html", context, lang=lang), frame=True, private=True)


# --- channel links, share links, invitation cards ---------------------------------------


@router.get("/j/{token}")
def channel_link(request: Request, token: str) -> Response:
    """A channel's short link (what its QR holds): counted, then the join form, or for
    an invitation channel the page that installs a card first."""
    lang = language(request)
    try:
        with db.transaction() as session:
            channel = channel_by_token(session, token)
            count_scan(session, channel)
            if channel.status != "active":
                raise DomainError("program_archived", "this link is no longer active")
            program, merchant = public_program(session, channel.program_id)
            target = channel_join_path(channel)
            if not channel.invitation:
                return RedirectResponse(target, status_code=303)
            settings = form_settings(session, program)
            context = {
                "token": token,
                "brand": webcard.brand(program, merchant),
                "offer": webcard.offer(program, channel.offer or settings.offer),
                "join_path": target,
            }
    except DomainError as exc:
        return _error_page(request, exc, lang=lang)
    response = render(request, "enrollment/invite.html", context, lang=lang)
    _device_cookie(request, response)
    return _secure(response, private=True)


@router.post("/j/{token}/card")
def invitation_card(request: Request, token: str) -> Response:
    try:
        with db.transaction() as session:
            channel = channel_by_token(session, token)
            card = create_invitation(
                session,
                channel,
                client_ip(request),
                request.cookies.get(DEVICE_COOKIE),
                request.headers.get("user-agent"),
            )
            public_token = card.public_token
    except DomainError as exc:
        return _error_page(request, exc)
    return RedirectResponse(f"/c/{public_token}?new=1", status_code=303)


@router.get("/r/{token}")
def share_link(request: Request, token: str) -> Response:
    """A card's share link: the friend lands on the join form with the referral noted."""
    with db.read() as session:
        referrer = referrer_for(session, token)
        if referrer is None:
            return _error_page(request, DomainError("not_found", "this invitation link is not valid"))
        program_id = referrer.program_id
    return RedirectResponse(
        join_path(program_id, ref=token, utm_source="referral", utm_medium="share"), status_code=303
    )


# --- the web card -----------------------------------------------------------------------

SERVICE_WORKER = """// loyalwallet web card: keeps the last card page for offline use (the barista can
// still scan it with no signal). Network first, the cached copy when offline.
const CACHE = "lw-cards-v1";
self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));
self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  const isCardPage = request.method === "GET" && request.mode === "navigate" && /^\\/c\\/[^/]+$/.test(url.pathname);
  const isStatic = request.method === "GET" && url.pathname.startsWith("/static/");
  if (!isCardPage && !isStatic) return;
  event.respondWith(
    fetch(request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(isCardPage ? url.pathname : request, copy));
        }
        return response;
      })
      .catch(() => caches.match(isCardPage ? url.pathname : request).then((hit) => hit || Response.error()))
  );
});
"""


BRAND_COLOURS = re.compile(r"^([0-9a-fA-F]{6})-([0-9a-fA-F]{6})-([0-9a-fA-F]{6})$")


@router.get("/brand/{colours}.css")
def brand_css(colours: str) -> Response:
    """A page's colours as a stylesheet (the CSP allows styles from our origin only, no
    style attributes): named by the colours themselves, so it can be cached for good."""
    match = BRAND_COLOURS.match(colours)
    if match is None:
        return Response("", status_code=404, media_type="text/css")
    background, foreground, label = match.groups()
    css = f".page {{ --brand: #{background}; --brand-fg: #{foreground}; --brand-label: #{label}; }}\n"
    return Response(
        css, media_type="text/css", headers={"Cache-Control": "public, max-age=31536000, immutable"}
    )


@router.get("/c/sw.js")
def service_worker() -> Response:
    return Response(
        SERVICE_WORKER,
        media_type="application/javascript",
        headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/c/"},
    )


@router.get("/c/{token}")
def web_card(request: Request, token: str) -> Response:
    try:
        with db.read() as session:
            card, program, merchant = webcard.load_card(session, token)
            if card.status == "blocked" and card.customer_id is None:
                target = merged_into(session, card)
                if target is not None:
                    return RedirectResponse(f"/c/{target.public_token}", status_code=303)
            context = webcard.card_page(session, card, program, merchant)
            _name, saved = webcard.first_name(session, card)
    except DomainError as exc:
        return _error_page(request, exc)
    context["new"] = request.query_params.get("new") == "1"
    context["platform"] = rules.platform(request.headers.get("user-agent"))
    response = render(request, "enrollment/card.html", context, lang=language(request, saved))
    return _secure(response, private=True)


@router.get("/c/{token}/manifest.webmanifest")
def manifest(request: Request, token: str) -> Response:
    try:
        with db.read() as session:
            card, program, merchant = webcard.load_card(session, token)
            look = webcard.brand(program, merchant, card.tier)
    except DomainError:
        return Response(status_code=404)
    body = {
        "name": f"{look['logo_text']} · {program.name}"[:60],
        "short_name": look["logo_text"][:12],
        "start_url": f"/c/{token}",
        "scope": f"/c/{token}",
        "id": f"/c/{token}",
        "display": "standalone",
        "background_color": look["background"],
        "theme_color": look["background"],
        "icons": [
            {
                "src": f"/c/{token}/icon-{size}.png",
                "sizes": f"{size}x{size}",
                "type": "image/png",
                "purpose": "any",
            }
            for size in (192, 512)
        ],
    }
    return Response(
        json.dumps(body, ensure_ascii=False),
        media_type="application/manifest+json",
        headers={"Cache-Control": "private, max-age=300", "Referrer-Policy": "no-referrer"},
    )


@router.get("/c/{token}/icon-{size:int}.png")
def icon(token: str, size: int) -> Response:
    if size not in (180, 192, 512):
        return Response(status_code=404)
    try:
        with db.read() as session:
            card, program, merchant = webcard.load_card(session, token)
            look = webcard.brand(program, merchant, card.tier)
            design = webcard.design_of(program)
            logo = load_asset(session, merchant.id, design.images.logo) if design.images.logo else None
            logo_bytes = logo.data if logo else None
    except DomainError:
        return Response(status_code=404)
    png = printing.app_icon(
        size,
        background=look["background"],
        foreground=look["foreground"],
        letter=look["logo_text"],
        logo=logo_bytes,
    )
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})
