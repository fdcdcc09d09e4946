"""Card code ranges of programs, plastic cards at the counter, and the customer import.

An imported balance is a ledger entry (kind "adjustment", reason "import: <file>") on
the new card, written through CardBook like any other, so `check-ledger` stays true.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalwallet.cards.book import CardBook
from loyalwallet.cards.codes import CODE_RE, normalise
from loyalwallet.cards.models import Card
from loyalwallet.cards.service import enroll
from loyalwallet.customers.models import Customer
from loyalwallet.customers.service import GuestData, phone_index
from loyalwallet.errors import DomainError, Explained, not_found
from loyalwallet.imports.models import CardCodeRange
from loyalwallet.imports.rules import CodeRange, Row, check_code, validate_range
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.service import audit
from loyalwallet.programs.models import Program
from loyalwallet.programs.service import get_program

# --- ranges -----------------------------------------------------------------------------


def _range(r: CardCodeRange) -> CodeRange:
    return CodeRange(r.prefix, r.length, r.first, r.last)


def ranges(session: Session, merchant_id: int, program_id: int | None = None) -> list[CardCodeRange]:
    stmt = select(CardCodeRange).where(CardCodeRange.merchant_id == merchant_id)
    if program_id is not None:
        stmt = stmt.where(CardCodeRange.program_id == program_id)
    return list(session.scalars(stmt.order_by(CardCodeRange.id)))


def add_range(
    session: Session,
    actor: Actor,
    program: Program,
    *,
    name: str,
    prefix: str,
    length: int,
    first: str | None = None,
    last: str | None = None,
) -> CardCodeRange:
    actor.require("manager")
    rng = validate_range(prefix, length, first or None, last or None)
    row = CardCodeRange(
        merchant_id=actor.merchant_id,
        program_id=program.id,
        name=name.strip()[:200],
        prefix=rng.prefix,
        length=rng.length,
        first=rng.first,
        last=rng.last,
    )
    session.add(row)
    session.flush()
    audit(
        session, actor, "code_range.create", "program", program.id, {"prefix": rng.prefix, "length": length}
    )
    return row


def delete_range(session: Session, actor: Actor, range_id: int) -> None:
    actor.require("manager")
    row = session.get(CardCodeRange, range_id)
    if row is None or row.merchant_id != actor.merchant_id:
        raise not_found("card code range")
    audit(session, actor, "code_range.delete", "program", row.program_id, {"prefix": row.prefix})
    session.delete(row)


def program_for_plastic(session: Session, merchant_id: int, raw_code: str) -> Program | None:
    """The program whose code range holds this not yet issued plastic number."""
    code = normalise(raw_code).upper()
    if not CODE_RE.match(code):
        return None
    if session.scalar(select(Card.id).where(Card.merchant_id == merchant_id, Card.code == code)):
        return None
    for r in ranges(session, merchant_id):
        if _range(r).matches(code):
            program = session.get(Program, r.program_id)
            if program is not None and program.status == "active":
                return program
    return None


def issue_plastic(
    session: Session, actor: Actor, raw_code: str, guest: GuestData, program_id: int | None = None
) -> tuple[Card, Program]:
    """A guest gets a plastic card handed out at the counter: its printed number becomes
    the card's code in the program whose range holds it."""
    program = program_for_plastic(session, actor.merchant_id, raw_code)
    if program is None or (program_id is not None and program.id != program_id):
        raise DomainError("validation_error", "this number is in no card code range, or is already issued")
    card, created = enroll(
        session, actor, program, guest, channel="plastic", code=normalise(raw_code).upper()
    )
    if not created:
        raise Explained(
            "conflict",
            "this guest already has a card of the program: {code}",
            code=card.code,
            extra={"card": card.code},
        )
    return card, program


# --- import -----------------------------------------------------------------------------


def plan(session: Session, merchant_id: int, program: Program, rows: list[Row]) -> list[Row]:
    """Check rows against the database: a phone that already holds a card of the program
    is skipped ("exists"); a card number taken by another card, or outside the program's
    ranges, is an error. Writes nothing."""
    all_ranges = ranges(session, merchant_id)
    own = [_range(r) for r in all_ranges if r.program_id == program.id]
    others = [_range(r) for r in all_ranges if r.program_id != program.id]
    good = [r for r in rows if r.ok]
    by_index = {phone_index(merchant_id, r.phone): r for r in good if r.phone}
    existing: set[str] = set()
    keys = list(by_index)
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        existing.update(
            session.scalars(
                select(Customer.phone_index)
                .join(Card, Card.customer_id == Customer.id)
                .where(
                    Customer.merchant_id == merchant_id,
                    Customer.phone_index.in_(chunk),
                    Card.program_id == program.id,
                )
            )
        )
    codes = [r.card for r in good if r.card]
    taken: set[str] = set()
    for i in range(0, len(codes), 500):
        taken.update(
            session.scalars(
                select(Card.code).where(Card.merchant_id == merchant_id, Card.code.in_(codes[i : i + 500]))
            )
        )
    for index, row in by_index.items():
        if index in existing:
            row.status = "exists"
            continue
        if row.card:
            if row.card in taken:
                row.errors.append(f"card number {row.card} is already used by another card")
            elif problem := check_code(row.card, own, others):
                row.errors.append(problem)
        if row.balance and program.kind != "bonus":
            row.errors.append("a balance can be imported only into a bonus program")
        if row.errors:
            row.status = "error"
    return rows


def apply(
    session: Session,
    actor: Actor,
    program: Program,
    rows: Iterable[Row],
    source: str,
    progress: Callable[[int], Any] | None = None,
) -> int:
    """Create the guests and cards of good new rows in this transaction; returns how many."""
    done = 0
    for row in rows:
        if row.status != "new" or not row.ok or row.phone is None:
            continue
        guest = GuestData(phone=row.phone, name=row.name, birthday=row.birthday)
        card, created = enroll_imported(session, actor, program, guest, row.card)
        if created and row.balance:
            book = CardBook(session, card, program)
            book.credit("adjustment", row.balance, actor=actor, reason=f"import: {source}"[:500])
            book.retier()
            # A brand-new card is on no device yet: nothing to push, so no touch().
        done += 1
        if progress:
            progress(1)
    audit(session, actor, "customers.import", "program", program.id, {"source": source, "cards": done})
    return done


def enroll_imported(
    session: Session, actor: Actor, program: Program, guest: GuestData, code: str | None
) -> tuple[Card, bool]:
    """Like enroll() but without the welcome gift: an imported guest brings a balance."""
    from loyalwallet.cards.service import new_card
    from loyalwallet.customers.service import get_or_create

    customer, _ = get_or_create(session, actor.merchant_id, guest)
    existing = session.scalar(
        select(Card).where(Card.program_id == program.id, Card.customer_id == customer.id)
    )
    if existing is not None:
        return existing, False
    card = new_card(session, program, customer.id, "import", code)
    audit(session, actor, "card.import", "card", card.code, {"program_id": program.id})
    return card, True


def program_for_import(session: Session, merchant_id: int, program_id: int) -> Program:
    program = get_program(session, merchant_id, program_id)
    if program.status != "active":
        raise DomainError("program_archived", "this program no longer takes new guests")
    return program
