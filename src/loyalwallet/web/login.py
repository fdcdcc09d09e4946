"""Log in, log out, the staff member's language and working location."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from loyalwallet import crypto, db
from loyalwallet.config import get_settings
from loyalwallet.errors import DomainError
from loyalwallet.merchants.models import Staff
from loyalwallet.text import LANGUAGES, gettext_for
from loyalwallet.web import sessions
from loyalwallet.web.pages import (
    current,
    form_data,
    render_staff,
    safe_next,
    staff_language,
    staff_page,
)
from loyalwallet.web.requests import client_ip
from loyalwallet.web.templating import render

router = APIRouter(include_in_schema=False)

LOGIN_CSRF_COOKIE = "lw_login_csrf"


def _secure() -> bool:
    return get_settings().base_url.startswith("https://")


def _home(role: str) -> str:
    return "/cashier" if role == "cashier" else "/admin"


def _login_page(
    request: Request, *, error: str | None = None, login: str = "", status: int = 200
) -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or crypto.token(18)
    lang = staff_language(request, None)
    response = render(
        request,
        "admin/login.html",
        {
            "login_csrf": token,
            "error": error,
            "login": login,
            "next": safe_next(request.query_params.get("next"), ""),
        },
        status=status,
        lang=lang,
    )
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_secure())
    return response


@router.get("/login")
def login_form(request: Request) -> Response:
    who = current(request)
    if who is not None:
        return RedirectResponse(safe_next(request.query_params.get("next"), _home(who.role)), status_code=303)
    return _login_page(request)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    login_name = str(form.get("login") or "").strip()[:200]
    password = str(form.get("password") or "")[:1000]
    _ = gettext_for(staff_language(request, None))
    # Login CSRF: the form's token must match the cookie set with the form (double submit).
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not sessions.csrf_ok(cookie or "", str(form.get("csrf") or "")):
        return _login_page(request, error=_("The form has expired; try again."), login=login_name, status=403)
    ip = client_ip(request)
    device_cookie = sessions.device_cookie_name(login_name)
    known = request.cookies.get(device_cookie)
    try:
        with db.transaction() as session:
            staff = sessions.authenticate(session, login_name, password, ip, known)
            token = None
            if staff is not None:
                token = sessions.start(
                    session,
                    staff,
                    location_id=None,
                    ip=ip,
                    user_agent=request.headers.get("user-agent"),
                )
                role, locale = staff.role, staff.locale
    except DomainError as exc:
        if exc.code != "rate_limited":
            raise
        sessions.refused(login_name, ip, known)
        return _login_page(
            request,
            error=_("Too many wrong passwords. Wait 15 minutes and try again."),
            login=login_name,
            status=429,
        )
    if token is None:
        return _login_page(request, error=_("Wrong login or password."), login=login_name, status=401)
    target = safe_next(str(form.get("next") or ""), _home(role))
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        sessions.COOKIE,
        token,
        max_age=int(sessions.LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=_secure(),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    # This browser is now a known device of the login (kept when it already was one).
    device = sessions.known_device(login_name, known)
    response.set_cookie(
        device_cookie,
        sessions.device_cookie(login_name, device),
        max_age=int(sessions.DEVICE_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=_secure(),
    )
    if locale in LANGUAGES:
        response.set_cookie("lang", locale, max_age=365 * 86400, samesite="lax")
    return response


@router.post("/logout")
async def logout(request: Request, who: sessions.StaffSession = Depends(staff_page("cashier"))) -> Response:
    await form_data(request, who)
    with db.transaction() as session:
        sessions.end(session, request.cookies.get(sessions.COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(sessions.COOKIE)
    return response


@router.post("/account/language")
async def set_language(
    request: Request, who: sessions.StaffSession = Depends(staff_page("cashier"))
) -> Response:
    form = await form_data(request, who)
    lang = str(form.get("lang") or "")
    if lang not in LANGUAGES:
        raise DomainError("validation_error", "unknown language", field="lang")
    with db.transaction() as session:
        staff = session.get(Staff, who.staff_id)
        assert staff is not None
        staff.locale = lang
    response = RedirectResponse(safe_next(str(form.get("next") or ""), _home(who.role)), status_code=303)
    response.set_cookie("lang", lang, max_age=365 * 86400, samesite="lax")
    return response


@router.get("/account/location")
def location_form(request: Request, who: sessions.StaffSession = Depends(staff_page("cashier"))) -> Response:
    with db.read() as session:
        staff = session.get(Staff, who.staff_id)
        assert staff is not None
        locations = sessions.locations_for(session, staff)
    return render_staff(
        request,
        who,
        "admin/choose_location.html",
        {"locations": locations, "next": safe_next(request.query_params.get("next"), _home(who.role))},
    )


@router.post("/account/location")
async def set_location(
    request: Request, who: sessions.StaffSession = Depends(staff_page("cashier"))
) -> Response:
    form = await form_data(request, who)
    try:
        location_id = int(str(form.get("location_id") or ""))
    except ValueError:
        raise DomainError("validation_error", "choose a location", field="location_id") from None
    with db.transaction() as session:
        staff = session.get(Staff, who.staff_id)
        assert staff is not None
        if location_id not in {loc.id for loc in sessions.locations_for(session, staff)}:
            raise DomainError("forbidden", "you are not bound to that location")
        sessions.set_location(session, request.cookies.get(sessions.COOKIE), location_id)
    return RedirectResponse(safe_next(str(form.get("next") or ""), _home(who.role)), status_code=303)
