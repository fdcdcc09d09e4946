"""Programs as the public sees them: the program behind a join link, the guest acting on
it, and the join links themselves.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from loyalwallet.config import get_settings
from loyalwallet.errors import DomainError, not_found
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.models import Merchant
from loyalwallet.programs.models import Program


def guest_actor(merchant_id: int) -> Actor:
    return Actor(merchant_id=merchant_id, role="guest", kind="guest")


def public_program(session: Session, program_id: int) -> tuple[Program, Merchant]:
    """The program behind a join link. An archived one raises program_archived."""
    program = session.get(Program, program_id)
    if program is None:
        raise not_found("program")
    merchant = session.get(Merchant, program.merchant_id)
    assert merchant is not None
    if program.status != "active":
        raise DomainError("program_archived", "this program no longer takes new guests")
    return program, merchant


def base_url() -> str:
    return get_settings().base_url


def join_path(program_id: int, **params: str | None) -> str:
    from urllib.parse import urlencode

    query = urlencode({k: v for k, v in params.items() if v})
    return f"/join/{program_id}" + (f"?{query}" if query else "")
