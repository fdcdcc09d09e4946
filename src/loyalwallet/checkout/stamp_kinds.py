"""Several stamp kinds on one card (issue 18): what a purchase and a refund do to kinds
2..4. Kind 1 keeps going through the purchase's own figures (stamps_added, ...), so a
single-kind programme runs exactly the code and statements it always did; everything
here is a no-op for it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from loyalwallet.cards.book import CardBook
from loyalwallet.checkout import rules
from loyalwallet.checkout.models import Purchase, Refund
from loyalwallet.programs.rules import Rules, StampRules


def multi(rules_: Rules) -> bool:
    return isinstance(rules_, StampRules) and rules_.multi_kind


def held(book: CardBook) -> dict[int, int]:
    """The card's stamps of kinds 2..4 (the rules' CardState.kind_stamps)."""
    return {int(k): int(v) for k, v in (book.card.kind_stamps or {}).items()}


def purchase_column(outcome: rules.Outcome) -> dict[str, list[int]] | None:
    """purchases.kind_stamps: {"2": [added, reversed]} for the kinds that got stamps."""
    added = {str(k.kind): [k.added, 0] for k in outcome.kind_stamps if k.added}
    return added or None


def credit(book: CardBook, outcome: rules.Outcome, purchase_id: int) -> list[int]:
    """Add each kind's stamps; returns the rewards the full kinds issued."""
    issued: list[int] = []
    for k in outcome.kind_stamps:
        issued += book.add_stamps("purchase", k.added, purchase_id=purchase_id, stamp_kind=k.kind)
    return issued


def outcome_view(rules_: Rules, outcome: rules.Outcome) -> list[dict[str, Any]]:
    """Per-kind figures of a quote or purchase answer (only for several kinds)."""
    assert isinstance(rules_, StampRules)
    kinds = rules_.stamp_kinds()
    first = rules.KindStamps(1, outcome.stamps_added, outcome.stamps_after, outcome.rewards_earned)
    return [
        {
            "kind": k.kind,
            "name": kinds[k.kind - 1].name,
            "stamps_added": k.added,
            "stamps": k.after,
            "stamps_to_collect": kinds[k.kind - 1].stamps_to_collect,
            "rewards_earned": k.rewards,
        }
        for k in (first, *outcome.kind_stamps)
    ]


def totals(p: Purchase) -> dict[str, dict[int, int]]:
    """PurchaseTotals' kind_added / kind_reversed from purchases.kind_stamps."""
    column = p.kind_stamps or {}
    return {
        "kind_added": {int(k): int(v[0]) for k, v in column.items()},
        "kind_reversed": {int(k): int(v[1]) for k, v in column.items()},
    }


def reverse(book: CardBook, outcome: rules.RefundOutcome, refund_id: int) -> dict[int, int]:
    """Take each kind's share off the card (revoking an unused reward of that kind when
    the stamps already became one); returns the stamps removed per kind."""
    removed = {}
    for kind, stamps in outcome.kind_stamps_reversed.items():
        removed[kind] = book.remove_stamps(stamps, refund_id=refund_id, reason="refund", stamp_kind=kind)
    return removed


def record(
    session: Session, p: Purchase, outcome: rules.RefundOutcome, refund_id: int, removed: dict[int, int]
) -> None:
    """What the refund took back per kind, on the purchase (running totals) and the refund."""
    if not outcome.kind_stamps_reversed:
        return
    column = {k: list(v) for k, v in (p.kind_stamps or {}).items()}
    for kind, stamps in outcome.kind_stamps_reversed.items():
        column[str(kind)][1] += stamps
    p.kind_stamps = column
    session.execute(
        update(Refund)
        .where(Refund.id == refund_id)
        .values(kind_stamps={str(k): v for k, v in removed.items()})
    )


def refund_view(kind_1: int, removed: dict[int, int]) -> list[dict[str, int]]:
    """Per-kind stamps a refund took off (kind 1 is the answer's stamps_reversed)."""
    return [{"kind": k, "stamps_reversed": v} for k, v in sorted({1: kind_1, **removed}.items())]
