"""The stamp kinds 2..4 of the programme form (programs.forms): inputs named
`kinds-<i>-<field>` (i = 0..2 for kinds 2..4). A kind whose name and count are both left
empty is no kind; the rest become `rules["kinds"]`, and the model's errors on
`kinds[j]` come back at the inputs of the form's kind they were typed in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from loyalwallet.programs.rules import MAX_STAMP_KINDS

SLOTS = MAX_STAMP_KINDS - 1  # kinds 2..4 on the form
TITLES = ("Stamp kind 2", "Stamp kind 3", "Stamp kind 4")


def mode_names() -> list[str]:
    return [f"kinds-{i}-stamp_mode" for i in range(SLOTS)]


def blank(values: Mapping[str, str], i: int) -> bool:
    return not values.get(f"kinds-{i}-name") and not values.get(f"kinds-{i}-stamps_required")


def modes_for_form(full: Mapping[str, Any], values: dict[str, str]) -> None:
    """Each shown kind's "stamps are given" choice, from whether it has qualifying items."""
    kinds = list(full.get("kinds") or [])
    for i in range(SLOTS):
        kind = kinds[i] if i < len(kinds) else {}
        values[f"kinds-{i}-stamp_mode"] = "item" if kind.get("qualifying") else "purchase"


def collect(
    raw: dict[str, Any], values: Mapping[str, str], errors: dict[str, str], _: Callable[[str], str]
) -> list[int]:
    """Turn raw["kinds"] ({i: {...}} as the inputs set it) into the list of filled kinds;
    returns the form slot of each listed kind (to put the model's errors back)."""
    slots = raw.pop("kinds", None) or {}
    kept = [i for i in range(SLOTS) if not blank(values, i)]
    kinds = []
    for i in kept:
        kind = dict(slots.get(i) or {})
        if values.get(f"kinds-{i}-stamp_mode") != "item":
            kind.pop("qualifying", None)  # stamps per purchase: the item lists are not used
        kinds.append(kind)
    if kinds:
        raw["kinds"] = kinds
    # Names must differ (kind 1's own name too): said at the second input of a name.
    seen = {values["kind_name"].casefold()} if values.get("kind_name") else set()
    for i in kept:
        name = values.get(f"kinds-{i}-name", "").casefold()
        if name and name in seen:
            errors.setdefault(f"kinds-{i}-name", _("Each stamp kind needs its own name."))
        seen.add(name)
    return kept


def remap(loc: tuple[Any, ...], kept: list[int]) -> tuple[Any, ...]:
    """The model's location of kinds[j] -> the form's slot of that kind."""
    if len(loc) >= 2 and loc[0] == "kinds" and isinstance(loc[1], int) and loc[1] < len(kept):
        return ("kinds", kept[loc[1]], *loc[2:])
    return loc
