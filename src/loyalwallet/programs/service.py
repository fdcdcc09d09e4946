"""Programs: create, read, change; parsed rules cached per (program id, version)."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalwallet.caches import LRU, size
from loyalwallet.cards.models import Card
from loyalwallet.db import utcnow
from loyalwallet.errors import DomainError, Explained, not_found
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.service import audit
from loyalwallet.outbox.service import enqueue
from loyalwallet.programs.models import KINDS, Program
from loyalwallet.programs.rules import Rules, parse_rules, rules_to_json

# (program id, version) -> parsed rules; the least recently used go first.
_cache: LRU[tuple[int, int], Rules] = LRU(size("PROGRAMS", 5000))
_cache_lock = threading.Lock()


def rules_of(program: Program) -> Rules:
    key = (program.id, program.version)
    with _cache_lock:
        rules = _cache.get(key)
    if rules is None:
        rules = parse_rules(program.kind, program.rules)
        with _cache_lock:
            _cache[key] = rules
    return rules


def create_program(
    session: Session,
    actor: Actor,
    kind: str,
    name: str,
    rules: dict[str, Any],
    design: dict[str, Any] | None = None,
) -> Program:
    actor.require("manager")
    if kind not in KINDS:
        raise Explained(
            "validation_error", "kind must be one of {kinds}", kinds=", ".join(KINDS), extra={"field": "kind"}
        )
    from loyalwallet.programs.design import default_design

    parsed = parse_rules(kind, rules)
    program = Program(
        merchant_id=actor.merchant_id,
        kind=kind,
        name=name.strip(),
        rules=rules_to_json(parsed),
        design=checked_design(session, actor.merchant_id, default_design(kind, design)),
        status="active",
        version=1,
    )
    session.add(program)
    session.flush()
    audit(session, actor, "program.create", "program", program.id, {"kind": kind, "name": name})
    return program


def checked_design(session: Session, merchant_id: int, design: dict[str, Any] | None) -> dict[str, Any]:
    """A valid card design whose images are this merchant's uploaded assets."""
    from loyalwallet.programs.design import parse_design

    parsed = parse_design(design)
    shas = {parsed.images.logo, parsed.images.icon, parsed.images.strip}
    shas |= {look.strip for look in parsed.tiers.values()}
    shas.discard(None)
    if shas:
        from loyalwallet.programs.models import Asset

        found = set(
            session.scalars(
                select(Asset.sha256).where(Asset.merchant_id == merchant_id, Asset.sha256.in_(shas))
            )
        )
        missing = sorted(s for s in shas if s is not None and s not in found)
        if missing:
            raise Explained(
                "validation_error",
                "unknown image {image}: upload it first",
                image=missing[0],
                extra={"field": "design"},
            )
    return parsed.model_dump(mode="json", exclude_defaults=True)


def get_program(session: Session, merchant_id: int, program_id: int) -> Program:
    program = session.get(Program, program_id)
    if program is None or program.merchant_id != merchant_id:
        raise not_found("program")
    return program


def list_programs(session: Session, merchant_id: int, include_archived: bool = False) -> list[Program]:
    stmt = select(Program).where(Program.merchant_id == merchant_id).order_by(Program.id)
    if not include_archived:
        stmt = stmt.where(Program.status == "active")
    return list(session.scalars(stmt))


def cards_per_program(session: Session, merchant_id: int) -> dict[int, int]:
    """How many cards each of the merchant's programs has issued (program id -> count)."""
    rows = session.execute(
        select(Card.program_id, func.count()).where(Card.merchant_id == merchant_id).group_by(Card.program_id)
    ).all()
    return {program_id: count for program_id, count in rows}


def card_count(session: Session, program_id: int) -> int:
    return int(
        session.scalar(select(func.count()).select_from(Card).where(Card.program_id == program_id)) or 0
    )


def update_program(
    session: Session,
    actor: Actor,
    program: Program,
    *,
    name: str | None = None,
    rules: dict[str, Any] | None = None,
    design: dict[str, Any] | None = None,
    status: str | None = None,
) -> Program:
    """Changing rules or design bumps the version and queues the refresh of issued cards."""
    actor.require("manager")
    changes: dict[str, Any] = {}
    if name is not None and name.strip() != program.name:
        program.name = name.strip()
        changes["name"] = program.name
    if rules is not None:
        program.rules = rules_to_json(parse_rules(program.kind, rules))
        changes["rules"] = program.rules
    if design is not None:
        checked = checked_design(session, program.merchant_id, design)
        if checked != program.design:
            program.design = checked
            changes["design"] = True
    if status is not None:
        if status not in ("active", "archived"):
            raise DomainError("validation_error", "status must be active or archived", field="status")
        program.status = status
        changes["status"] = status
    if changes:
        program.version += 1
        program.updated_at = utcnow()
        audit(session, actor, "program.update", "program", program.id, changes)
        # Every issued card must refresh in the wallets (wiring.CARD_CHANGED_LISTENERS fan out).
        enqueue(
            session,
            program.merchant_id,
            "program.changed",
            {"program_id": program.id, "version": program.version},
        )
    return program


def program_view(program: Program) -> dict[str, Any]:
    return {
        "id": program.id,
        "kind": program.kind,
        "name": program.name,
        "rules": program.rules,
        "design": program.design,
        "status": program.status,
        "version": program.version,
        "created_at": program.created_at.isoformat(),
    }
