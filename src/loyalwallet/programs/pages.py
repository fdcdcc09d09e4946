"""Programs: list, create, rules, plastic card code ranges, and the card designer."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from loyalwallet import db
from loyalwallet.api.responses import FastJSON
from loyalwallet.errors import DomainError, Explained, translated
from loyalwallet.merchants.service import list_locations
from loyalwallet.programs import assets
from loyalwallet.programs import service as programs
from loyalwallet.programs.design import parse_design
from loyalwallet.programs.forms import (
    TIER_PERIOD,
    TIER_PERIOD_DAYS,
    Gettext,
    RulesForm,
    form_to_rules,
    rules_to_form,
)
from loyalwallet.programs.models import KINDS, Program
from loyalwallet.programs.rules import Rules, parse_rules, rules_to_json
from loyalwallet.text import gettext_for, symbol
from loyalwallet.web.pages import form_data, merchant_of, redirect, render_staff, staff_language, staff_page
from loyalwallet.web.sessions import StaffSession

router = APIRouter(include_in_schema=False)

# What a new program starts with (the owner edits it before saving).
STARTER_RULES: dict[str, dict[str, Any]] = {
    "bonus": {
        "tiers": [
            {"name": "Bronze", "min_spend": 0, "cashback_pct": 5},
            {"name": "Silver", "min_spend": 1_000_000, "cashback_pct": 7},
        ],
        "welcome_points": 100,
        "birthday_points": 0,
        "max_redeem_pct": 50,
        "ttl_days": 365,
    },
    "discount": {"tiers": [{"name": "Guest", "min_spend": 0, "discount_pct": 5}]},
    # stamps_required 6: five paid cups, the sixth free; from the amount alone the
    # reward takes off up to 200.00 (with check lines: the cheapest matching item).
    "stamp": {"stamps_required": 6, "reward": {"kind": "free_item", "name": "Free coffee", "value": 20_000}},
}


KIND_TITLES = {
    "bonus": "Bonus points",
    "discount": "Discount card",
    "stamp": "Stamp card",
    "iiko": "iiko loyalty",
}
KIND_HELP = {
    "bonus": "Guests earn a percent of each check in points and pay part of a check with them.",
    "discount": "A permanent discount that grows with the guest's spend.",
    "stamp": "A stamp per purchase; a full card gives a free item or a discount.",
    "iiko": "The café's iiko keeps points and statuses; cards show iiko's balance and the till finds the guest by the card number.",
}
# Tier and reward names of the starter rules, shown in the owner's language.
STARTER_NAMES = ("Bronze", "Silver", "Guest", "Free coffee")


def _iiko_tiers(merchant_id: int) -> list[str] | None:
    """The tiers of a new iiko programme (from the iiko connection), None when not connected."""
    from loyalwallet.integrations.iiko.service import programme_tiers

    with db.read() as session:
        return programme_tiers(session, merchant_id)


def _iiko_rules(merchant_id: int) -> dict[str, Any]:
    tiers = _iiko_tiers(merchant_id)
    if tiers is None:
        raise DomainError("iiko_not_connected", "connect iiko first (the owner's iiko page)")
    return {"tiers": [{"name": name} for name in tiers]}


def _errors(exc: DomainError, _: Gettext = str) -> list[str]:
    items = exc.extra.get("errors") or []
    return [f"{'.'.join(str(p) for p in e['loc'])}: {_(e['msg'])}" for e in items] or [translated(exc, _)]


def _gettext(request: Request, who: StaffSession) -> tuple[Gettext, str]:
    """The page's gettext and the decimal separator the form shows."""
    lang = staff_language(request, who)
    return gettext_for(lang), "," if lang == "ru" else "."


def _posted(form: FormData) -> dict[str, str]:
    return {k: v for k, v in form.multi_items() if isinstance(v, str)}


def _form_context(form: RulesForm, currency: str) -> dict[str, Any]:
    return {
        "form": form,
        "tier_period": TIER_PERIOD,
        "tier_period_days": TIER_PERIOD_DAYS,
        "currency_symbol": symbol(currency),
        "kind_titles": KIND_TITLES,
    }


@router.get("/admin/programs")
def list_page(request: Request, who: StaffSession = Depends(staff_page("manager"))) -> Response:
    with db.read() as session:
        rows = programs.list_programs(session, who.merchant_id, include_archived=True)
        counts = programs.cards_per_program(session, who.merchant_id)
    return render_staff(
        request,
        who,
        "admin/programs.html",
        {
            "programs": rows,
            "counts": counts,
            "kinds": [k for k in KINDS if k in KIND_TITLES],
            "kind_titles": KIND_TITLES,
            "kind_help": KIND_HELP,
            "iiko_connected": _iiko_tiers(who.merchant_id) is not None,
        },
        section="programs",
    )


def _new_page(
    request: Request,
    who: StaffSession,
    form: RulesForm,
    name: str,
    *,
    name_error: str | None = None,
) -> Response:
    merchant = merchant_of(who)
    return render_staff(
        request,
        who,
        "admin/program_new.html",
        {
            **_form_context(form, merchant.currency),
            "name": name,
            "name_error": name_error,
            "rules_text": json.dumps(
                STARTER_RULES.get(form.kind) or _iiko_rules(who.merchant_id), indent=2, ensure_ascii=False
            ),
            "json_errors": None,
            "json_action": "/admin/programs",
            "json_hidden": {"kind": form.kind, "name": name or KIND_TITLES[form.kind]},
        },
        section="programs",
        status=422 if form.errors or name_error else 200,
        merchant=merchant,
    )


@router.get("/admin/programs/new")
def new_page(
    request: Request,
    kind: str = "",
    name: str = "",
    who: StaffSession = Depends(staff_page("manager")),
) -> Response:
    if kind == "iiko" and _iiko_tiers(who.merchant_id) is None:
        return redirect("/admin/programs#new-program", "Connect iiko first (the owner's iiko page).")
    if kind not in KIND_TITLES:
        return redirect("/admin/programs#new-program")
    _, sep = _gettext(request, who)
    starter = STARTER_RULES[kind] if kind in STARTER_RULES else _iiko_rules(who.merchant_id)
    form = rules_to_form(kind, starter, sep)
    for row in form.tiers:
        row["name"] = _(row["name"]) if row["name"] in STARTER_NAMES else row["name"]
    if form.values.get("reward-name") in STARTER_NAMES:
        form.values["reward-name"] = _(form.values["reward-name"])
    return _new_page(request, who, form, name.strip()[:200])


@router.post("/admin/programs")
async def create(request: Request, who: StaffSession = Depends(staff_page("manager"))) -> Response:
    form = await form_data(request, who)
    kind = str(form.get("kind") or "")
    name = str(form.get("name") or "").strip()
    if kind == "iiko":
        _iiko_rules(who.merchant_id)  # an iiko programme needs the merchant's iiko connection
    if "rules" in form:  # the JSON of the advanced section (or an API-style post)
        try:
            rules = json.loads(str(form.get("rules") or "") or json.dumps(STARTER_RULES.get(kind, {})))
        except json.JSONDecodeError as exc:
            raise Explained("validation_error", "the rules are not valid JSON: {msg}", msg=exc.msg) from None
        with db.transaction() as session:
            program = programs.create_program(session, who.actor, kind, name or "Program", rules)
            program_id = program.id
        return redirect(f"/admin/programs/{program_id}", "Program created.")
    if kind not in KINDS:
        raise Explained(
            "validation_error", "kind must be one of {kinds}", kinds=", ".join(KINDS), extra={"field": "kind"}
        )
    _, sep = _gettext(request, who)
    parsed: Rules | None
    if kind == "iiko":  # no rules of ours to fill in: the tiers come from the iiko connection
        starter = _iiko_rules(who.merchant_id)
        state, parsed = rules_to_form(kind, starter, sep), parse_rules(kind, starter)
    else:
        state, parsed = form_to_rules(kind, _posted(form), _, sep)
    name_error = _("Required") if not name else None
    if len(name) > 200:
        name_error = _("Too long: at most {n} characters").format(n=200)
    if parsed is None or name_error:
        return _new_page(request, who, state, name, name_error=name_error)
    with db.transaction() as session:
        program = programs.create_program(session, who.actor, kind, name, rules_to_json(parsed))
        program_id = program.id
    return redirect(f"/admin/programs/{program_id}", "Program created.")


def _program_page(
    request: Request,
    who: StaffSession,
    program_id: int,
    *,
    form: RulesForm | None = None,
    rules_text: str | None = None,
    json_errors: list[str] | None = None,
) -> Response:
    _, sep = _gettext(request, who)
    merchant = merchant_of(who)
    with db.read() as session:
        program = programs.get_program(session, who.merchant_id, program_id)
        from loyalwallet.imports.service import ranges

        code_ranges = ranges(session, who.merchant_id, program.id)
        cards = programs.card_count(session, program.id)
    return render_staff(
        request,
        who,
        "admin/program.html",
        {
            **_form_context(form or rules_to_form(program.kind, program.rules, sep), merchant.currency),
            "program": program,
            "rules_text": rules_text or json.dumps(program.rules, indent=2, ensure_ascii=False),
            "json_errors": json_errors,
            "json_action": f"/admin/programs/{program.id}",
            "json_hidden": {},
            "ranges": code_ranges,
            "cards": cards,
        },
        section="programs",
        status=422 if json_errors or (form and form.errors) else 200,
        merchant=merchant,
    )


@router.get("/admin/programs/{program_id}")
def program_page(
    program_id: int, request: Request, who: StaffSession = Depends(staff_page("manager"))
) -> Response:
    return _program_page(request, who, program_id)


def _save(
    who: StaffSession, program_id: int, form: FormData, rules: Callable[[Program], dict[str, Any] | None]
) -> None:
    """Name, status and rules in one go, through the same service call as the API; `rules`
    returns None when there is nothing valid to save (and then nothing is written)."""
    with db.transaction() as session:
        program = programs.get_program(session, who.merchant_id, program_id)
        new_rules = rules(program)
        if new_rules is None:
            return
        status = str(form.get("status") or program.status)
        programs.update_program(
            session,
            who.actor,
            program,
            name=str(form.get("name") or program.name),
            # Unchanged rules or status do not bump the version (nor refresh every card).
            rules=None if new_rules == program.rules else new_rules,
            status=None if status == program.status else status,
        )


@router.post("/admin/programs/{program_id}")
async def update(
    program_id: int, request: Request, who: StaffSession = Depends(staff_page("manager"))
) -> Response:
    form = await form_data(request, who)
    _, sep = _gettext(request, who)
    done = "Saved. Issued cards are being updated."
    if "rules" in form:  # the JSON of the advanced section
        rules_text = str(form.get("rules") or "")
        try:
            raw = json.loads(rules_text)
            if not isinstance(raw, dict):
                raise ValueError
        except ValueError:
            return _program_page(
                request,
                who,
                program_id,
                rules_text=rules_text,
                json_errors=[_("The rules are not a JSON object.")],
            )
        try:
            _save(who, program_id, form, lambda p: rules_to_json(parse_rules(p.kind, raw)))
        except DomainError as exc:
            if exc.code != "validation_error":
                raise
            return _program_page(request, who, program_id, rules_text=rules_text, json_errors=_errors(exc, _))
        return redirect(f"/admin/programs/{program_id}", done)

    state: list[RulesForm] = []

    def from_form(program: Program) -> dict[str, Any] | None:
        if program.kind == "iiko":
            # The form has no rules of an iiko programme (iiko keeps them): its tiers, which
            # iiko's customer categories map to, stay as they are; name and status are saved.
            return dict(program.rules)
        rules_form, parsed = form_to_rules(program.kind, _posted(form), _, sep)
        state.append(rules_form)
        return None if parsed is None else rules_to_json(parsed)

    _save(who, program_id, form, from_form)
    if state and state[0].errors:
        return _program_page(request, who, program_id, form=state[0])
    return redirect(f"/admin/programs/{program_id}", done)


@router.post("/admin/programs/{program_id}/ranges")
async def add_range(
    program_id: int, request: Request, who: StaffSession = Depends(staff_page("manager"))
) -> Response:
    from loyalwallet.imports.service import add_range as add

    form = await form_data(request, who)
    try:
        length = int(str(form.get("length") or "0"))
    except ValueError:
        raise DomainError("validation_error", "the length is a number", field="length") from None
    with db.transaction() as session:
        program = programs.get_program(session, who.merchant_id, program_id)
        add(
            session,
            who.actor,
            program,
            name=str(form.get("name") or ""),
            prefix=str(form.get("prefix") or ""),
            length=length,
            first=str(form.get("first") or "").strip() or None,
            last=str(form.get("last") or "").strip() or None,
        )
    return redirect(f"/admin/programs/{program_id}#ranges", "Card code range added.")


@router.post("/admin/programs/{program_id}/ranges/{range_id}/delete")
async def delete_range(
    program_id: int, range_id: int, request: Request, who: StaffSession = Depends(staff_page("manager"))
) -> Response:
    from loyalwallet.imports.service import delete_range as delete

    await form_data(request, who)
    with db.transaction() as session:
        delete(session, who.actor, range_id)
    return redirect(f"/admin/programs/{program_id}#ranges", "Card code range removed.")


# --- the card designer ------------------------------------------------------------------


@router.get("/admin/programs/{program_id}/design")
def designer(
    program_id: int, request: Request, who: StaffSession = Depends(staff_page("manager"))
) -> Response:
    with db.read() as session:
        program = programs.get_program(session, who.merchant_id, program_id)
        design = parse_design(program.design).model_dump(mode="json")
        tiers = [t["name"] for t in program.rules.get("tiers", [])]
        locations = [
            {"latitude": loc.latitude, "longitude": loc.longitude, "relevant_text": loc.name}
            for loc in list_locations(session, who.merchant_id, active_only=True)
            if loc.latitude is not None and loc.longitude is not None
        ]
    return render_staff(
        request,
        who,
        "admin/designer.html",
        {
            "program": program,
            "design": design,
            "tiers": tiers,
            "our_locations": locations,
            "asset_base": f"/assets/{who.merchant_id}/",
        },
        section="programs",
    )


@router.post("/admin/programs/{program_id}/design")
async def save_design(
    program_id: int, request: Request, who: StaffSession = Depends(staff_page("manager"))
) -> Response:
    form = await form_data(request, who)
    try:
        raw = json.loads(str(form.get("design") or "{}"))
    except json.JSONDecodeError:
        raise DomainError("validation_error", "the design is not valid JSON") from None
    design = parse_design(raw).model_dump(mode="json", exclude_defaults=False)
    with db.transaction() as session:
        program = programs.get_program(session, who.merchant_id, program_id)
        images = [design["images"][k] for k in ("logo", "icon", "strip") if design["images"].get(k)]
        images += [t["strip"] for t in design["tiers"].values() if t.get("strip")]
        for sha in images:
            if assets.load(session, who.merchant_id, sha) is None:
                raise DomainError(
                    "validation_error", "an image of the design was not uploaded", field="images"
                )
        programs.update_program(session, who.actor, program, design=design)
    return redirect(
        f"/admin/programs/{program_id}/design", "Design saved: the issued cards are being updated."
    )


@router.post("/admin/programs/{program_id}/design/image")
async def upload_image(
    program_id: int, request: Request, who: StaffSession = Depends(staff_page("manager"))
) -> Response:
    form = await form_data(request, who)
    upload = form.get("image")
    if upload is None or isinstance(upload, str):
        raise DomainError("validation_error", "choose an image file", field="image")
    data = await upload.read(assets.MAX_BYTES + 1)
    with db.transaction() as session:
        programs.get_program(session, who.merchant_id, program_id)
        asset = assets.store(session, who.merchant_id, data)
        return FastJSON(
            {
                "sha256": asset.sha256,
                "url": f"/assets/{who.merchant_id}/{asset.sha256}",
                "width": asset.width,
                "height": asset.height,
            },
            status_code=201,
        )
