"""The admin's "Invite guests" page of a programme (owner and managers): the join link,
the counter QR (SVG, PNG), the printable table tent (A6, and four on an A4 sheet), the
website widget, and the programme's channels with their numbers — everything the
channels API does, from the browser.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from markupsafe import Markup
from starlette.datastructures import FormData
from starlette.responses import Response

from loyalwallet import db
from loyalwallet.enrollment import channels as channel_service
from loyalwallet.enrollment import invite, printing, rules
from loyalwallet.errors import DomainError, translated
from loyalwallet.merchants.service import list_locations
from loyalwallet.programs.service import list_programs
from loyalwallet.text import LANGUAGES, gettext_for
from loyalwallet.web.pages import form_data, redirect, render_staff, staff_language, staff_page
from loyalwallet.web.sessions import StaffSession

router = APIRouter(include_in_schema=False)
manager = staff_page("manager")

# Channel kinds as the page names them (English msgids, translated in invite.po).
KIND_TITLES = {
    "counter_qr": "Counter QR",
    "table_tent": "Table tent",
    "website_widget": "Website widget",
    "instagram": "Instagram",
    "mailing": "Mailing",
    "other": "Other",
}
UTM_TITLES = [
    ("utm_source", "Source tag (utm_source)"),
    ("utm_medium", "Medium tag (utm_medium)"),
    ("utm_campaign", "Campaign tag (utm_campaign)"),
]
# The downloads: URL name -> invite.KINDS.
FILES = {"qr.svg": "qr_svg", "qr.png": "qr_png", "tent-a6.pdf": "tent_a6", "tent-a4.pdf": "tent_a4"}
UTM = ("utm_source", "utm_medium", "utm_campaign")
FIELDS = ("name", "kind", "location_id", "offer", "slug", *UTM, "invitation")


@router.get("/admin/invite")
def choose(request: Request, who: StaffSession = Depends(manager)) -> Response:
    """The nav's entry: straight to the only active programme, else a choice."""
    with db.read() as session:
        programs = [p for p in list_programs(session, who.merchant_id) if p.status == "active"]
    if len(programs) == 1:
        return redirect(f"/admin/programs/{programs[0].id}/invite")
    return render_staff(request, who, "admin/invite_choose.html", {"programs": programs}, section="invite")


def _page(
    request: Request,
    who: StaffSession,
    program_id: int,
    *,
    archived: bool = False,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    edit_errors: dict[int, dict[str, str]] | None = None,
    edit_forms: dict[int, dict[str, str]] | None = None,
) -> Response:
    with db.read() as session:
        where = invite.target(session, who.merchant_id, program_id, None)
        program = where.program
        channels = channel_service.list_channels(session, who.merchant_id, program.id, archived=True)
        stats = channel_service.channel_stats(session, channels)
        locations = list_locations(session, who.merchant_id)
        printed = invite.printed_at(session, who.merchant_id)
    active = [c for c in channels if c.status == "active"]
    lang = staff_language(request, who)
    return render_staff(
        request,
        who,
        "admin/invite.html",
        {
            "program": program,
            "join_url": where.url,
            "qr_svg": Markup(printing.qr_svg(where.url, scale=5, inline=True)),
            "widget": invite.widget(where),
            "channels": active,
            "archived": [c for c in channels if c.status != "active"],
            "show_archived": archived,
            "stats": stats,
            "short_url": invite.short_url,
            "channel_widget": lambda c: invite.widget(invite.Target(program, c, invite.short_url(c))),
            "kinds": KIND_TITLES,
            "utm_titles": UTM_TITLES,
            "locations": locations,
            "location_names": {loc.id: loc.name for loc in locations},
            "form": form or {"kind": "table_tent"},
            "errors": errors or {},
            "edit_errors": edit_errors or {},
            "edit_forms": edit_forms or {},
            "printed": printed,
            "other_lang": next((code for code in LANGUAGES if code != lang), None),
            "base": f"/admin/programs/{program.id}",
        },
        section="invite",
        status=422 if errors or edit_errors else 200,
    )


@router.get("/admin/programs/{program_id}/invite")
def invite_page(
    program_id: int,
    request: Request,
    archived: bool = Query(False),
    who: StaffSession = Depends(manager),
) -> Response:
    return _page(request, who, program_id, archived=archived)


@router.get("/admin/programs/{program_id}/invite/{name}")
def download(
    program_id: int,
    name: str,
    channel: int | None = Query(None, ge=1, le=2**62),
    lang: str | None = Query(None, pattern="^(ru|en)$"),
    who: StaffSession = Depends(manager),
) -> Response:
    """A QR code or a table tent, saved as a file; the first download ticks "counter QR
    printed" on the setup checklist."""
    kind = FILES.get(name)
    if kind is None:
        raise DomainError("not_found", "no such file")
    with db.read() as session:
        where = invite.target(session, who.merchant_id, program_id, channel)
        file = invite.download(session, who.merchant_id, where, kind, lang)
        first = not invite.was_printed(session, who.merchant_id)
    if first:
        with db.transaction() as session:
            invite.record_download(session, who.actor, where, kind)
    return Response(
        file.content,
        media_type=file.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{file.filename}"',
            "Cache-Control": "no-store",
        },
    )


# --- channels -------------------------------------------------------------------------------


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _read(form: FormData, *, new: bool) -> dict[str, str]:
    out = {name: _text(form, name) for name in FIELDS}
    out["invitation"] = "on" if form.get("invitation") == "on" else ""
    if not new:
        out.pop("kind"), out.pop("slug")
    return out


def _check(values: dict[str, str], location_ids: set[int], _: Any, *, new: bool) -> dict[str, str]:
    """Field errors in the owner's language; empty when the form can be saved."""
    errors: dict[str, str] = {}
    if not values["name"]:
        errors["name"] = _("Required")
    elif len(values["name"]) > 200:
        errors["name"] = _("Too long: at most {n} characters").format(n=200)
    if new and values["kind"] not in rules.CHANNEL_KINDS:
        errors["kind"] = _("Choose where the link will be used")
    if new and values["slug"] and not rules.SLUG_RE.match(values["slug"]):
        errors["slug"] = _("2 to 40 lowercase Latin letters, digits and dashes")
    if len(values["offer"]) > 300:
        errors["offer"] = _("Too long: at most {n} characters").format(n=300)
    for tag in UTM:
        if len(values[tag]) > 100:
            errors[tag] = _("Too long: at most {n} characters").format(n=100)
    loc = values["location_id"]
    if loc and (not loc.isdigit() or int(loc) not in location_ids):
        errors["location_id"] = _("Choose one of your locations")
    return errors


def _data(values: dict[str, str]) -> dict[str, Any]:
    return {
        "name": values["name"],
        "location_id": int(values["location_id"]) if values["location_id"] else None,
        "offer": values["offer"] or None,
        **{tag: values[tag] or None for tag in UTM},  # a new channel's source and medium follow its kind
        "invitation": values["invitation"] == "on",
    }


def _domain_error(exc: DomainError, _: Any) -> dict[str, str]:
    if exc.code == "conflict":
        return {"slug": _("This short name is taken: choose another one")}
    if exc.code == "program_archived":
        return {"name": _("The programme is archived: make it active to invite guests")}
    return {str(exc.extra.get("field") or "name"): translated(exc, _)}


def _location_ids(who: StaffSession) -> set[int]:
    with db.read() as session:
        return {loc.id for loc in list_locations(session, who.merchant_id)}


@router.post("/admin/programs/{program_id}/channels")
async def create_channel(program_id: int, request: Request, who: StaffSession = Depends(manager)) -> Response:
    form = await form_data(request, who)
    _ = gettext_for(staff_language(request, who))
    values = _read(form, new=True)
    errors = _check(values, _location_ids(who), _, new=True)
    if not errors:
        try:
            with db.transaction() as session:
                channel = channel_service.create_channel(
                    session,
                    who.actor,
                    {
                        **_data(values),
                        "program_id": program_id,
                        "kind": values["kind"],
                        "slug": values["slug"] or None,
                    },
                )
                channel_id = channel.id
        except DomainError as exc:
            if exc.code in ("not_found", "forbidden"):
                raise
            errors = _domain_error(exc, _)
    if errors:
        return _page(request, who, program_id, form=values, errors=errors)
    return redirect(f"/admin/programs/{program_id}/invite#channel-{channel_id}", "Channel created.")


@router.post("/admin/programs/{program_id}/channels/{channel_id}")
async def update_channel(
    program_id: int, channel_id: int, request: Request, who: StaffSession = Depends(manager)
) -> Response:
    form = await form_data(request, who)
    _ = gettext_for(staff_language(request, who))
    values = _read(form, new=False)
    errors = _check(values, _location_ids(who), _, new=False)
    if not errors:
        with db.transaction() as session:
            channel = invite.target(session, who.merchant_id, program_id, channel_id).channel
            assert channel is not None
            # Strings as typed: an emptied offer or tag is cleared; a field the form did not
            # send stays as it is.
            typed = {name: values[name] for name in ("offer", *UTM)}
            changes = {k: v for k, v in {**_data(values), **typed}.items() if k in form or k == "invitation"}
            channel_service.update_channel(session, who.actor, channel, changes)
    if errors:
        return _page(
            request, who, program_id, edit_errors={channel_id: errors}, edit_forms={channel_id: values}
        )
    return redirect(f"/admin/programs/{program_id}/invite#channel-{channel_id}", "Saved.")


@router.post("/admin/programs/{program_id}/channels/{channel_id}/{action}")
async def archive_channel(
    program_id: int, channel_id: int, action: str, request: Request, who: StaffSession = Depends(manager)
) -> Response:
    """Archive (the link stops enrolling; cards keep their channel) or restore."""
    await form_data(request, who)
    status = {"archive": "archived", "restore": "active"}.get(action)
    if status is None:
        raise DomainError("not_found", "no such action")
    with db.transaction() as session:
        channel = invite.target(session, who.merchant_id, program_id, channel_id).channel
        assert channel is not None
        channel_service.update_channel(session, who.actor, channel, {"status": status})
    if status == "archived":
        return redirect(
            f"/admin/programs/{program_id}/invite", "Channel archived: its link no longer enrols guests."
        )
    return redirect(f"/admin/programs/{program_id}/invite#channel-{channel_id}", "Channel restored.")
