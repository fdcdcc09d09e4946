"""The owner's pages: staff (roles, locations, access), locations and API keys."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from loyalwallet import db
from loyalwallet.config import get_settings
from loyalwallet.customers.phones import to_e164
from loyalwallet.customers.service import phone_index
from loyalwallet.errors import DomainError, Explained
from loyalwallet.merchants import service as merchants
from loyalwallet.merchants.passwords import hash_password
from loyalwallet.web import sessions
from loyalwallet.web.pages import form_data, redirect, render_staff, staff_page
from loyalwallet.web.sessions import StaffSession

router = APIRouter(include_in_schema=False)
owner = staff_page("owner")


def _ids(form: FormData, name: str) -> list[int]:
    return [int(v) for v in form.getlist(name) if isinstance(v, str) and v.isdigit()]


# --- staff ------------------------------------------------------------------------------


@router.get("/admin/staff")
def staff_page_(request: Request, who: StaffSession = Depends(owner)) -> Response:
    with db.read() as session:
        people = merchants.list_staff(session, who.merchant_id)
        bound = merchants.locations_of_staff(session, [s.id for s in people])
        locations = merchants.list_locations(session, who.merchant_id)
    return render_staff(
        request,
        who,
        "admin/staff.html",
        {
            "people": people,
            "bound": bound,
            "locations": locations,
            "names": {loc.id: loc.name for loc in locations},
        },
        section="staff",
    )


@router.post("/admin/staff")
async def create_staff(request: Request, who: StaffSession = Depends(owner)) -> Response:
    form = await form_data(request, who)
    phone = str(form.get("phone") or "").strip()
    with db.transaction() as session:
        index = phone_index(who.merchant_id, to_e164(phone, get_settings().default_region)) if phone else None
        merchants.create_staff(
            session,
            who.merchant_id,
            str(form.get("login") or ""),
            str(form.get("password") or ""),
            str(form.get("role") or ""),
            str(form.get("name") or "").strip(),
            _ids(form, "locations"),
            phone_index=index,
            actor=who.actor,
        )
    return redirect("/admin/staff", "Staff member added.")


@router.post("/admin/staff/{staff_id}")
async def update_staff(staff_id: int, request: Request, who: StaffSession = Depends(owner)) -> Response:
    """Change role, locations, password, or disable; disabling or a new password logs
    the person out everywhere."""
    form = await form_data(request, who)
    with db.transaction() as session:
        staff = merchants.get_staff(session, who.merchant_id, staff_id)
        role = str(form.get("role") or staff.role)
        if role not in ("owner", "manager", "cashier"):
            raise DomainError("validation_error", "unknown role", field="role")
        if staff.id == who.staff_id and (role != "owner" or form.get("active") != "on"):
            raise DomainError("validation_error", "you cannot demote or disable yourself")
        staff.role = role
        staff.name = str(form.get("name") or staff.name).strip()[:200]
        active = form.get("active") == "on"
        password = str(form.get("password") or "")
        logout = (staff.active and not active) or bool(password)
        staff.active = active
        if password:
            if len(password) < 8:
                raise DomainError(
                    "validation_error", "a password needs at least 8 characters", field="password"
                )
            staff.password_hash = hash_password(password)
        merchants.bind_staff_to_locations(session, who.merchant_id, staff, _ids(form, "locations"))
        if logout and staff.id != who.staff_id:
            sessions.end_all_for(session, staff.id)
        merchants.audit(
            session,
            who.actor,
            "staff.update",
            "staff",
            staff.id,
            {"role": role, "active": active, "password": bool(password)},
        )
    return redirect("/admin/staff", "Saved.")


# --- locations --------------------------------------------------------------------------


def _coord(form: FormData, name: str, limit: float) -> float | None:
    raw = str(form.get(name) or "").strip().replace(",", ".")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise Explained("validation_error", "{name} is a number", name=name, extra={"field": name}) from None
    if not -limit <= value <= limit:
        raise Explained(
            "validation_error",
            "{name} is between -{limit:g} and {limit:g}",
            name=name,
            limit=limit,
            extra={"field": name},
        )
    return value


@router.get("/admin/locations")
def locations_page(request: Request, who: StaffSession = Depends(owner)) -> Response:
    with db.read() as session:
        locations = merchants.list_locations(session, who.merchant_id)
    return render_staff(request, who, "admin/locations.html", {"locations": locations}, section="locations")


@router.post("/admin/locations")
async def create_location(request: Request, who: StaffSession = Depends(owner)) -> Response:
    form = await form_data(request, who)
    name = str(form.get("name") or "").strip()
    if not name:
        raise DomainError("validation_error", "a location needs a name", field="name")
    with db.transaction() as session:
        merchants.create_location(
            session,
            who.actor,
            name[:200],
            str(form.get("address") or "").strip()[:500] or None,
            _coord(form, "latitude", 90),
            _coord(form, "longitude", 180),
            str(form.get("phone") or "").strip()[:32] or None,
        )
    return redirect("/admin/locations", "Location added.")


@router.post("/admin/locations/{location_id}")
async def update_location(location_id: int, request: Request, who: StaffSession = Depends(owner)) -> Response:
    form = await form_data(request, who)
    with db.transaction() as session:
        loc = merchants.get_location(session, who.merchant_id, location_id)
        loc.name = str(form.get("name") or loc.name).strip()[:200]
        loc.address = str(form.get("address") or "").strip()[:500] or None
        loc.phone = str(form.get("phone") or "").strip()[:32] or None
        loc.latitude = _coord(form, "latitude", 90)
        loc.longitude = _coord(form, "longitude", 180)
        merchants.audit(session, who.actor, "location.update", "location", loc.id, {"name": loc.name})
    return redirect("/admin/locations", "Saved.")


@router.post("/admin/locations/{location_id}/{action}")
async def archive_location(
    location_id: int, action: str, request: Request, who: StaffSession = Depends(owner)
) -> Response:
    """Archive a location (cashiers no longer pick it; its history stays) or restore it."""
    if action not in ("archive", "restore"):
        raise DomainError("not_found", "no such action")
    await form_data(request, who)
    with db.transaction() as session:
        loc = merchants.get_location(session, who.merchant_id, location_id)
        loc.active = action == "restore"
        merchants.audit(session, who.actor, f"location.{action}", "location", loc.id, {"name": loc.name})
    return redirect("/admin/locations", "Location archived." if action == "archive" else "Location restored.")


# --- API keys ---------------------------------------------------------------------------


@router.get("/admin/api-keys")
def keys_page(request: Request, who: StaffSession = Depends(owner)) -> Response:
    with db.read() as session:
        keys = merchants.list_api_keys(session, who.merchant_id)
        locations = merchants.list_locations(session, who.merchant_id)
    return render_staff(
        request,
        who,
        "admin/api_keys.html",
        {
            "keys": keys,
            "locations": locations,
            "names": {loc.id: loc.name for loc in locations},
            "new_key": None,
        },
        section="api_keys",
    )


@router.post("/admin/api-keys")
async def create_key(request: Request, who: StaffSession = Depends(owner)) -> Response:
    form = await form_data(request, who)
    location = str(form.get("location_id") or "")
    with db.transaction() as session:
        _key, plain = merchants.create_api_key(
            session,
            who.merchant_id,
            str(form.get("name") or "").strip()[:200] or "POS",
            str(form.get("role") or "cashier"),
            int(location) if location.isdigit() else None,
            actor=who.actor,
        )
        keys = merchants.list_api_keys(session, who.merchant_id)
        locations = merchants.list_locations(session, who.merchant_id)
    # The key is shown on this response only (no redirect: it must not land in a cookie or a URL).
    response = render_staff(
        request,
        who,
        "admin/api_keys.html",
        {
            "keys": keys,
            "locations": locations,
            "names": {loc.id: loc.name for loc in locations},
            "new_key": plain,
        },
        section="api_keys",
        status=201,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/admin/api-keys/{key_id}/revoke")
async def revoke_key(key_id: int, request: Request, who: StaffSession = Depends(owner)) -> Response:
    await form_data(request, who)
    with db.transaction() as session:
        merchants.revoke_api_key(session, who.actor, key_id)
    return redirect("/admin/api-keys", "Key revoked.")
