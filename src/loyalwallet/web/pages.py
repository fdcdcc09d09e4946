"""What every staff page shares: who is logged in, role checks, CSRF on forms, rendering
with the admin layout, and the session authenticator that lets the pages' JavaScript
call the JSON API (/api/v1/...) with the session cookie.

Other parts' admin pages use the same three things:

    from loyalwallet.web.pages import staff_page, render_staff, form_data
    @router.get("/admin/campaigns")
    def campaigns(request: Request, who: StaffSession = Depends(staff_page("manager"))):
        return render_staff(request, who, "campaigns/list.html", {...}, section="campaigns")
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from fastapi import FastAPI, Request
from starlette.datastructures import FormData
from starlette.responses import HTMLResponse, RedirectResponse, Response

from loyalwallet import db
from loyalwallet.errors import DomainError, translated
from loyalwallet.merchants.actors import RANK, Actor
from loyalwallet.merchants.models import Merchant
from loyalwallet.merchants.service import merchant_tz
from loyalwallet.text import LANGUAGES, gettext_for
from loyalwallet.web import nav
from loyalwallet.web.i18n import pick_language
from loyalwallet.web.sessions import COOKIE, CSRF_FIELD, CSRF_HEADER, StaffSession, csrf_ok, load
from loyalwallet.web.templating import env, local_time, render

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

# Red banners on every admin page (wiring.ADMIN_BANNERS, set by install_http): each is
# called with the merchant and the viewer's role and returns None or
# {"id", "message", "href", "link"} (English msgids, translated when shown).
BANNERS: list[Callable[[Merchant, str], dict[str, Any] | None]] = []


def _pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}\u00a0%"


def _num(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}".replace(",", "\u00a0")


env.filters["pct"] = _pct
env.filters["num"] = _num


class LoginRequired(Exception):
    pass


class PageForbidden(Exception):
    def __init__(self, who: StaffSession, detail: str) -> None:
        super().__init__(detail)
        self.who = who
        self.detail = detail


def current(request: Request) -> StaffSession | None:
    """The request's staff session (looked up once per request)."""
    if hasattr(request.state, "staff_session"):
        return request.state.staff_session
    token = request.cookies.get(COOKIE)
    who = None
    if token:
        with db.read() as session:
            who = load(session, token)
    request.state.staff_session = who
    return who


def staff_page(role: str = "cashier") -> Callable[[Request], StaffSession]:
    """A dependency: the logged-in staff member with at least `role`; a visitor without a
    session goes to the login page, a lower role gets 403."""

    def dependency(request: Request) -> StaffSession:
        who = current(request)
        if who is None:
            raise LoginRequired()
        if RANK.get(who.role, 0) < RANK[role]:
            raise PageForbidden(who, f"this page needs the {role} role")
        return who

    return dependency


async def form_data(request: Request, who: StaffSession) -> FormData:
    """The posted form, after checking its CSRF token (a field or the header)."""
    form = await request.form()
    given = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not csrf_ok(who.csrf, given if isinstance(given, str) else None):
        raise DomainError("forbidden", "the form has expired; reload the page and try again")
    return form


def staff_language(request: Request, who: StaffSession | None) -> str:
    return pick_language(
        request.query_params.get("lang"),
        who.locale if who else None,
        request.cookies.get("lang"),
        request.headers.get("accept-language"),
    )


def merchant_of(who: StaffSession) -> Merchant:
    with db.read() as session:
        merchant = session.get(Merchant, who.merchant_id)
        assert merchant is not None
        return merchant


def render_staff(
    request: Request,
    who: StaffSession,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    section: str | None = None,
    status: int = 200,
    merchant: Merchant | None = None,
) -> HTMLResponse:
    merchant = merchant or merchant_of(who)
    ctx = {
        "who": who,
        "csrf": who.csrf,
        "merchant": merchant,
        "currency": merchant.currency,
        "local": partial(local_time, tz=merchant_tz(merchant)),
        "nav": nav.visible(who.role),
        "section": section,
        "can": lambda role: RANK.get(who.role, 0) >= RANK[role],
        "banners": _banners(merchant, who.role) if request.url.path.startswith("/admin") else [],
        **(context or {}),
    }
    message, kind = _take_flash(request)
    if message and "flash" not in ctx:
        ctx["flash"], ctx["flash_kind"] = message, kind
    response = render(request, template, ctx, status=status, lang=staff_language(request, who))
    if message:
        response.delete_cookie(FLASH_COOKIE)
    return response


def _banners(merchant: Merchant, role: str) -> list[dict[str, Any]]:
    if RANK.get(role, 0) < RANK["manager"]:
        return []  # the cashier's screen stays clean: a barista cannot fix settings
    return [b for b in (banner(merchant, role) for banner in BANNERS) if b]


def _same_site_referer(request: Request) -> str | None:
    ref = request.headers.get("referer")
    if not ref:
        return None
    parts = urlsplit(ref)
    if parts.netloc and parts.netloc != request.url.netloc:
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


def safe_next(target: str | None, default: str) -> str:
    """Only same-site paths: '/admin/guests' yes, '//evil.example' and 'https://...' no."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


def session_actor(request: Request) -> Actor | None:
    """An API authenticator (wiring.API_AUTHENTICATORS): the API accepts the staff cookie; writes also need
    the X-CSRF-Token header, which another site's page cannot read or send."""
    who = current(request)
    if who is None:
        return None
    if request.method not in SAFE_METHODS and not csrf_ok(who.csrf, request.headers.get(CSRF_HEADER)):
        raise DomainError("forbidden", "missing or wrong X-CSRF-Token header")
    return who.actor


FLASH_COOKIE = "lw_flash"
PAGE_PREFIXES = ("/admin", "/cashier", "/account", "/logout")


def flash(response: Response, message: str, kind: str = "ok") -> Response:
    """A one-time message shown at the top of the next page."""
    response.set_cookie(
        FLASH_COOKIE, quote(f"{kind}|{message[:300]}"), max_age=60, samesite="lax", httponly=True
    )
    return response


def redirect(url: str, message: str | None = None, kind: str = "ok") -> Response:
    response = RedirectResponse(url, status_code=303)
    return flash(response, message, kind) if message else response


def _take_flash(request: Request) -> tuple[str | None, str | None]:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None, None
    kind, _, message = unquote(raw).partition("|")
    return (message or None), (kind if kind in ("ok", "error") else "ok")


def install(app: FastAPI) -> None:
    """Page errors: to the login page without a session, an HTML 403 for a lower role,
    and a form's DomainError back to the form with the message on top."""
    api_handler = app.exception_handlers[DomainError]  # the API's problem+json answer

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> Response:
        path = request.url.path
        accept = request.headers.get("accept", "")
        if request.method == "POST" and path.startswith(PAGE_PREFIXES) and "text/html" in accept:
            who = current(request)
            _ = gettext_for(staff_language(request, who))
            back = safe_next(_same_site_referer(request), "/admin")
            return redirect(back, translated(exc, _), "error")
        if path.startswith(PAGE_PREFIXES) and (who := current(request)) is not None:
            # A page's own script (an upload, a save) shows the detail: in the staff's language.
            detail = translated(exc, gettext_for(staff_language(request, who)))
            exc = DomainError(exc.code, detail, **exc.extra)
        response = api_handler(request, exc)
        return await response if inspect.isawaitable(response) else response

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, _exc: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    @app.exception_handler(PageForbidden)
    async def _forbidden(request: Request, exc: PageForbidden) -> Response:
        lang = staff_language(request, exc.who)
        _ = gettext_for(lang)
        return render(
            request,
            "admin/error.html",
            {"title": _("Not allowed"), "message": _("Your role cannot open this page."), "who": exc.who},
            status=403,
            lang=lang,
        )


__all__ = ["LANGUAGES", "StaffSession", "install", "render_staff", "staff_page"]
