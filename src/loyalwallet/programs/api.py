"""HTTP API of programs, and the public, cache-forever serving of design images by
merchant and SHA-256 (`assets_router`)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from loyalwallet import db
from loyalwallet.api.deps import actor as any_actor
from loyalwallet.api.deps import manager
from loyalwallet.api.responses import FastJSON
from loyalwallet.errors import not_found
from loyalwallet.merchants.actors import Actor
from loyalwallet.programs import service
from loyalwallet.programs.assets import load, store, url
from loyalwallet.programs.rules import stamps_to_collect
from loyalwallet.programs.schemas import ProgramIn, ProgramPatch

router = APIRouter(prefix="/api/v1", tags=["programs"])
assets_router = APIRouter(tags=["assets"])


@router.post("/programs", status_code=201, summary="Create a program (manager+)")
def create(body: ProgramIn, who: Actor = Depends(manager)) -> Response:
    with db.transaction() as session:
        program = service.create_program(session, who, body.kind, body.name, body.rules, body.design)
        return FastJSON(service.program_view(program), status_code=201)


@router.get("/programs", summary="Programs of the merchant")
def list_(archived: bool = Query(False), who: Actor = Depends(any_actor)) -> dict[str, Any]:
    with db.read() as session:
        return {
            "items": [
                service.program_view(p) for p in service.list_programs(session, who.merchant_id, archived)
            ]
        }


@router.get("/programs/{program_id}", summary="A program")
def get(program_id: int, who: Actor = Depends(any_actor)) -> dict[str, Any]:
    with db.read() as session:
        return service.program_view(service.get_program(session, who.merchant_id, program_id))


@router.patch("/programs/{program_id}", summary="Change a program; issued cards are updated (manager+)")
def patch(program_id: int, body: ProgramPatch, who: Actor = Depends(manager)) -> dict[str, Any]:
    with db.transaction() as session:
        program = service.get_program(session, who.merchant_id, program_id)
        service.update_program(
            session, who, program, name=body.name, rules=body.rules, design=body.design, status=body.status
        )
        return service.program_view(program)


# --- design images ------------------------------------------------------------------------


@assets_router.get(
    "/assets/{merchant_id}/{sha}", summary="A card design image (public)", include_in_schema=False
)
def get_asset(merchant_id: int, sha: str) -> Response:
    if len(sha) != 64:
        raise not_found("image")
    with db.read() as session:
        asset = load(session, merchant_id, sha)
        if asset is None:
            raise not_found("image")
        return Response(
            asset.data,
            media_type=asset.content_type,
            headers={"Cache-Control": "public, max-age=31536000, immutable", "ETag": f'"{sha}"'},
        )


@assets_router.post(
    "/api/v1/assets",
    status_code=201,
    tags=["programs"],
    summary="Upload a card design image (PNG, JPEG or WebP, ≤ 5 MB; manager+)",
)
async def upload_asset(request: Request, who: Actor = Depends(manager)) -> Response:
    """The raw image is the request body; the answer gives the SHA-256 to put in a
    program's design (images.logo / icon / strip, or a tier's strip)."""
    data = await request.body()
    with db.transaction() as session:
        asset = store(session, who.merchant_id, data)
        body = {
            "sha256": asset.sha256,
            "url": url(who.merchant_id, asset.sha256),
            "width": asset.width,
            "height": asset.height,
        }
    return FastJSON(body, status_code=201)


@assets_router.get(
    "/assets/{merchant_id}/programs/{program_id}/v{version}/stamps/{stamps}.png",
    summary="A stamp card's strip for a number of stamps (public)",
    include_in_schema=False,
)
def stamp_strip(
    merchant_id: int,
    program_id: int,
    version: int,
    stamps: int,
    tier: str | None = None,
    kinds: str | None = Query(None, pattern=r"^\d{1,3}(-\d{1,3}){0,2}$"),
) -> Response:
    """Rendered on demand from the program's design (and cached in-process): Google
    Wallet shows it as the card's hero image. The program version in the path makes a
    new design a new URL, so the answer may be cached forever."""
    from loyalwallet.programs import images
    from loyalwallet.programs.models import Program

    with db.read() as session:
        program = session.get(Program, program_id)
        if program is None or program.merchant_id != merchant_id or program.kind != "stamp":
            raise not_found("image")
        required = stamps_to_collect(int(program.rules.get("stamps_required", 2)))
        if not 0 <= stamps <= required:
            raise not_found("image")
        # Several stamp kinds: the stamps of kinds 2..4, each within its own cells.
        others = [int(n) for n in kinds.split("-")] if kinds else []
        extra = program.rules.get("kinds") or []
        if len(others) != len(extra) or any(
            n > stamps_to_collect(int(k.get("stamps_required", 2)))
            for n, k in zip(others, extra, strict=False)
        ):
            raise not_found("image")
        card = SimpleNamespace(
            stamps=stamps, tier=tier, kind_stamps={str(i): n for i, n in enumerate(others, start=2)}
        )
        png = images.strip_for(session, program, card).data
    cache = "public, max-age=31536000, immutable" if version == program.version else "no-cache"
    return Response(png, media_type="image/png", headers={"Cache-Control": cache})
