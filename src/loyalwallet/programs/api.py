"""HTTP API of programs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from loyalwallet import db
from loyalwallet.api.deps import actor as any_actor
from loyalwallet.api.deps import manager
from loyalwallet.api.responses import FastJSON
from loyalwallet.merchants.actors import Actor
from loyalwallet.programs import service
from loyalwallet.programs.schemas import ProgramIn, ProgramPatch

router = APIRouter(prefix="/api/v1", tags=["programs"])


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
