"""Programs: list, create, rules, plastic card code ranges, and the card designer."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import func, select
from starlette.responses import Response

from loyalwallet import db
from loyalwallet.api.responses import FastJSON
from loyalwallet.cards.models import Card
from loyalwallet.errors import DomainError
from loyalwallet.merchants.models import Location
from loyalwallet.programs import assets
from loyalwallet.programs import service as programs
from loyalwallet.programs.design import parse_design
from loyalwallet.programs.models import KINDS
from loyalwallet.programs.rules import parse_rules, rules_to_json
from loyalwallet.web.pages import form_data, redirect, render_staff, staff_page
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
    "stamp": {"stamps_required": 6, "reward": {"kind": "free_item", "name": "Free coffee"}},
}


def _errors(exc: DomainError) -> list[str]:
    items = exc.extra.get("errors") or []
    return [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in items] or [exc.detail]


@router.get("/admin/programs")
def list_page(request: Request, who: StaffSession = Depends(staff_page("manager"))) -> Response:
    with db.read() as session:
        rows = programs.list_programs(session, who.merchant_id, include_archived=True)
        counts = dict(
            session.execute(
                select(Card.program_id, func.count())
                .where(Card.merchant_id == who.merchant_id)
                .group_by(Card.program_id)
            ).all()
        )
    return render_staff(
        request,
        who,
        "admin/programs.html",
        {
            "programs": rows,
            "counts": counts,
            "kinds": KINDS,
            "starter": {k: json.dumps(v, indent=2, ensure_ascii=False) for k, v in STARTER_RULES.items()},
        },
        section="programs",
    )


@router.post("/admin/programs")
async def create(request: Request, who: StaffSession = Depends(staff_page("manager"))) -> Response:
    form = await form_data(request, who)
    kind = str(form.get("kind") or "")
    try:
        rules = json.loads(str(form.get("rules") or "") or json.dumps(STARTER_RULES.get(kind, {})))
    except json.JSONDecodeError as exc:
        raise DomainError("validation_error", f"the rules are not valid JSON: {exc.msg}") from None
    with db.transaction() as session:
        program = programs.create_program(session, who.actor, kind, str(form.get("name") or "Program"), rules)
        program_id = program.id
    return redirect(f"/admin/programs/{program_id}", "Program created.")


def _program_page(
    request: Request,
    who: StaffSession,
    program_id: int,
    *,
    rules_text: str | None = None,
    errors: list[str] | None = None,
) -> Response:
    with db.read() as session:
        program = programs.get_program(session, who.merchant_id, program_id)
        from loyalwallet.imports.service import ranges

        code_ranges = ranges(session, who.merchant_id, program.id)
        cards = session.scalar(select(func.count()).select_from(Card).where(Card.program_id == program.id))
    return render_staff(
        request,
        who,
        "admin/program.html",
        {
            "program": program,
            "rules_text": rules_text or json.dumps(program.rules, indent=2, ensure_ascii=False),
            "errors": errors,
            "ranges": code_ranges,
            "cards": cards,
        },
        section="programs",
        status=422 if errors else 200,
    )


@router.get("/admin/programs/{program_id}")
def program_page(
    program_id: int, request: Request, who: StaffSession = Depends(staff_page("manager"))
) -> Response:
    return _program_page(request, who, program_id)


@router.post("/admin/programs/{program_id}")
async def update(
    program_id: int, request: Request, who: StaffSession = Depends(staff_page("manager"))
) -> Response:
    form = await form_data(request, who)
    rules_text = str(form.get("rules") or "")
    try:
        rules = json.loads(rules_text)
        if not isinstance(rules, dict):
            raise ValueError
    except ValueError:
        return _program_page(
            request, who, program_id, rules_text=rules_text, errors=["the rules are not a JSON object"]
        )
    try:
        with db.transaction() as session:
            program = programs.get_program(session, who.merchant_id, program_id)
            new_rules = None if rules_to_json(parse_rules(program.kind, rules)) == program.rules else rules
            status = str(form.get("status") or program.status)
            programs.update_program(
                session,
                who.actor,
                program,
                name=str(form.get("name") or program.name),
                rules=new_rules,
                status=status,
            )
    except DomainError as exc:
        if exc.code != "validation_error":
            raise
        return _program_page(request, who, program_id, rules_text=rules_text, errors=_errors(exc))
    return redirect(f"/admin/programs/{program_id}", "Saved. Issued cards are being updated.")


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
            for loc in session.scalars(
                select(Location).where(Location.merchant_id == who.merchant_id, Location.active.is_(True))
            )
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
