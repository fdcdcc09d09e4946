"""Program rules as an HTML form: the texts a café owner types <-> the rules dict.

Only the syntax of numbers is checked here (money in major units such as "10 000,50",
percents such as "7,5"); every limit and cross-field rule comes from the pydantic models
in programs.rules, the same ones the API uses. Errors come back per input name, in the
user's language.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from loyalwallet.programs import kind_form
from loyalwallet.programs.form_values import (
    FieldError,
    format_money,
    format_percent,
    parse_int,
    parse_money,
    parse_percent,
)
from loyalwallet.programs.rules import RULES_BY_KIND, Rules, rules_to_json

Gettext = Callable[[str], str]


# --- what the form has ------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    name: str  # the input's name; "reward-pct" lives at rules["reward"]["pct"]
    type: str  # int | money | percent | text | choice | bool | list
    label: str
    help: str
    optional: bool = False  # blank means None (not the model's default)
    choices: tuple[tuple[str, str], ...] = ()
    unit: str = ""  # after the input; "money" shows the merchant's currency

    @property
    def path(self) -> tuple[str | int, ...]:
        # "kinds-0-name" lives at rules["kinds"][0]["name"]
        return tuple(int(p) if p.isdigit() else p for p in self.name.split("-"))


@dataclass(frozen=True)
class Section:
    title: str
    fields: tuple[Field, ...]
    tiers: bool = False  # the tiers table and the tier period come first


TIER_PERIOD = Field(
    "tier_period",
    "choice",
    "Spend counted",
    "Which purchases decide the guest's tier.",
    choices=(("lifetime", "Over all time"), ("rolling", "Over the last N days")),
)
TIER_PERIOD_DAYS = Field(
    "tier_period_days", "int", "Days", "Only with “over the last N days”.", optional=True, unit="days"
)
STAMP_MODE = Field(
    "stamp_mode",
    "choice",
    "Stamps are given",
    "Per purchase, or for each qualifying item in the check.",
    choices=(("purchase", "Per purchase"), ("item", "Per qualifying item")),
)

BONUS = (
    Section("Tiers", (), tiers=True),
    Section(
        "Points for events",
        (
            Field("welcome_points", "int", "Welcome points", "Given once when a guest joins.", unit="points"),
            Field(
                "birthday_points", "int", "Birthday points", "Given on the guest's birthday.", unit="points"
            ),
            Field(
                "referral_points",
                "int",
                "Referral points",
                "Given to the guest and to the friend after the friend's first purchase.",
                unit="points",
            ),
        ),
    ),
    Section(
        "Earning points",
        (
            Field(
                "accrual_base",
                "choice",
                "Cashback is counted on",
                "The amount the cashback percent applies to.",
                choices=(
                    ("paid", "The money actually paid"),
                    ("after_discounts", "The check after discounts, including the part paid with points"),
                ),
            ),
            Field(
                "min_check",
                "money",
                "Minimum check",
                "Smaller checks earn no points; 0: any check.",
                unit="money",
            ),
            Field(
                "pending_hours",
                "int",
                "Points wait before they can be spent",
                "0: new points can be spent at once.",
                unit="hours",
            ),
            Field(
                "accrue_on_redeem",
                "bool",
                "Earn points when paying with points",
                "When off, a check partly paid with points earns nothing.",
            ),
        ),
    ),
    Section(
        "Spending points",
        (
            Field(
                "point_value",
                "money",
                "One point is worth",
                "When paying with points: 1 = one point per rouble.",
                unit="money",
            ),
            Field(
                "max_redeem_pct",
                "percent",
                "Max share of a check paid with points",
                "The rest is paid with money.",
                unit="%",
            ),
            Field(
                "ttl_days",
                "int",
                "Points expire after",
                "Empty: points never expire.",
                optional=True,
                unit="days",
            ),
        ),
    ),
    Section(
        "Refunds",
        (
            Field(
                "refund_debt",
                "choice",
                "If the guest already spent the refunded points",
                "A negative balance is repaid by the next purchases; or the balance stops at zero.",
                choices=(
                    ("allow", "Allow a negative balance"),
                    ("clamp", "Stop at zero"),
                ),
            ),
        ),
    ),
)

DISCOUNT = (Section("Tiers", (), tiers=True),)

STAMP: tuple[Section, ...] = (
    Section(
        "Stamps",
        (
            Field(
                "stamps_required",
                "int",
                "Every N-th visit is the reward",
                "6: five paid stamps fill the card, the reward is used on the sixth visit.",
                unit="stamps",
            ),
            Field("welcome_stamps", "int", "Welcome stamps", "Given once when a guest joins.", unit="stamps"),
            Field(
                "kind_name",
                "text",
                "Name of the stamp kind",
                "With several stamp kinds, e.g. “Coffee”: the card shows each kind by its name.",
                optional=True,
            ),
            Field(
                "min_amount",
                "money",
                "Minimum check",
                "Smaller checks get no stamp; 0: any check.",
                unit="money",
            ),
            Field(
                "max_stamps_per_purchase",
                "int",
                "Max stamps per purchase",
                "Empty: no limit.",
                optional=True,
                unit="stamps",
            ),
        ),
    ),
    Section(
        "What earns a stamp",
        (
            STAMP_MODE,
            Field("stamps_per_purchase", "int", "Stamps per purchase", "With “per purchase”.", unit="stamps"),
            Field("stamps_per_item", "int", "Stamps per item", "With “per qualifying item”.", unit="stamps"),
            Field(
                "qualifying-skus", "list", "Qualifying SKUs", "Item codes from the POS, separated by commas."
            ),
            Field(
                "qualifying-categories",
                "list",
                "Qualifying categories",
                "Categories from the POS, separated by commas.",
            ),
        ),
    ),
    Section(
        "Reward",
        (
            Field(
                "reward-kind",
                "choice",
                "Reward",
                "What a full card turns into.",
                choices=(
                    ("free_item", "A free item"),
                    ("percent_off", "A percent off the check"),
                    ("fixed_off", "A fixed amount off the check"),
                ),
            ),
            Field("reward-name", "text", "Reward name", "The guest sees it on the card, e.g. “Free coffee”."),
            Field(
                "reward-value",
                "money",
                "Amount off",
                "A fixed amount off. For a free item: the most it takes off; a sale without check "
                "lines takes off this amount (0: the item's price from the check lines only).",
                unit="money",
            ),
            Field(
                "reward-pct",
                "percent",
                "Percent off",
                "For a percent off the check.",
                optional=True,
                unit="%",
            ),
            Field(
                "reward-sku",
                "text",
                "Free item SKU",
                "The item given free (the cheapest one in the check); empty: any item.",
                optional=True,
            ),
            Field("reward-category", "text", "Free item category", "Or a whole category.", optional=True),
            Field(
                "reward-valid_days",
                "int",
                "Reward valid for",
                "Empty: no expiry.",
                optional=True,
                unit="days",
            ),
        ),
    ),
)


def _kind_section(i: int) -> Section:
    """Stamp kind i + 2 of a card with several kinds: the fields of kind 1 that matter."""
    p = f"kinds-{i}-"
    return Section(
        kind_form.TITLES[i],
        (
            Field(p + "name", "text", "Name of the stamp kind", "Empty: no such kind. E.g. “Pastry”."),
            Field(
                p + "stamps_required",
                "int",
                "Every N-th visit is the reward",
                "6: five paid stamps fill the card, the reward is used on the sixth visit.",
                unit="stamps",
            ),
            Field(p + "stamp_mode", "choice", STAMP_MODE.label, STAMP_MODE.help, choices=STAMP_MODE.choices),
            Field(
                p + "stamps_per_purchase", "int", "Stamps per purchase", "With “per purchase”.", unit="stamps"
            ),
            Field(
                p + "stamps_per_item", "int", "Stamps per item", "With “per qualifying item”.", unit="stamps"
            ),
            Field(
                p + "qualifying-skus",
                "list",
                "Qualifying SKUs",
                "Item codes from the POS, separated by commas.",
            ),
            Field(
                p + "qualifying-categories",
                "list",
                "Qualifying categories",
                "Categories from the POS, separated by commas.",
            ),
            *(
                Field(p + f.name, f.type, f.label, f.help, f.optional, f.choices, f.unit)
                for f in STAMP[-1].fields
                if f.name in ("reward-kind", "reward-name", "reward-value", "reward-pct", "reward-category")
            ),
        ),
    )


STAMP = (*STAMP, *(_kind_section(i) for i in range(kind_form.SLOTS)))

# An iiko programme has no rules of ours to edit: iiko keeps them (integrations/iiko).
SECTIONS: dict[str, tuple[Section, ...]] = {"bonus": BONUS, "discount": DISCOUNT, "stamp": STAMP, "iiko": ()}
TIER_PCT = {"bonus": "cashback_pct", "discount": "discount_pct"}
TIER_COLUMNS = ("name", "min_spend", "pct")


def fields_of(kind: str) -> list[Field]:
    out = [f for s in SECTIONS[kind] for f in s.fields]
    if kind in TIER_PCT:
        out += [TIER_PERIOD, TIER_PERIOD_DAYS]
    return out


@dataclass
class RulesForm:
    """What the form shows: the texts of its inputs, the tier rows, and errors by input name
    ("tier-0-min_spend", "tiers" for the table as a whole, "form" for the rest)."""

    kind: str
    values: dict[str, str]
    tiers: list[dict[str, str]] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def sections(self) -> tuple[Section, ...]:
        return SECTIONS[self.kind]

    @property
    def has_tiers(self) -> bool:
        return self.kind in TIER_PCT

    @property
    def first_error(self) -> str | None:
        """The first input with an error, in the order of the page (it gets the focus)."""
        order = ["form", "tiers"]
        order += [f"tier-{i}-{c}" for i in range(len(self.tiers) + 1) for c in TIER_COLUMNS]
        order += [TIER_PERIOD.name, TIER_PERIOD_DAYS.name] if self.has_tiers else []
        order += [f.name for s in self.sections for f in s.fields]
        return next((name for name in order if name in self.errors), None)


def _get(data: Mapping[str, Any], path: tuple[str | int, ...]) -> Any:
    value: Any = data
    for key in path:
        if isinstance(key, int):
            value = value[key] if isinstance(value, list) and key < len(value) else None
        else:
            value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _show(f: Field, value: Any, sep: str) -> str:
    if f.type == "money":
        return format_money(value, sep)
    if f.type == "percent":
        return format_percent(value, sep)
    if f.type == "bool":
        return "1" if value else ""
    if f.type == "list":
        return ", ".join(value or [])
    return "" if value is None else str(value)


def rules_to_form(kind: str, rules: Mapping[str, Any], sep: str = ",") -> RulesForm:
    """The form for stored (or starter) rules; the model fills in the defaults."""
    try:
        full: Mapping[str, Any] = rules_to_json(RULES_BY_KIND[kind].model_validate(rules))
    except ValidationError:
        full = rules
    values = {f.name: _show(f, _get(full, f.path), sep) for f in fields_of(kind)}
    tiers: list[dict[str, str]] = []
    if kind in TIER_PCT:
        days = full.get("tier_period_days")
        values["tier_period"] = "lifetime" if days is None else "rolling"
        tiers = [
            {
                "name": str(t.get("name", "")),
                "min_spend": format_money(t.get("min_spend"), sep),
                "pct": format_percent(t.get(TIER_PCT[kind]), sep),
            }
            for t in full.get("tiers") or []
        ]
    if kind == "stamp":
        values["stamp_mode"] = "purchase" if full.get("qualifying") is None else "item"
        kind_form.modes_for_form(full, values)
    if kind == "iiko":  # shown, not edited: iiko's categories are mapped to them
        tiers = [{"name": str(t.get("name", ""))} for t in full.get("tiers") or []]
    return RulesForm(kind, values, tiers)


# --- from the posted form to the rules --------------------------------------------------

_PARSERS: dict[str, Callable[[str], Any]] = {
    "int": parse_int,
    "money": parse_money,
    "percent": parse_percent,
}

# The models' own cross-field messages -> (input name, what the owner reads).
_MODEL_MESSAGES: dict[str, tuple[str, str]] = {
    "tier names must be unique": ("tiers", "Each tier needs its own name."),
    "tiers must be listed by strictly increasing min_spend": (
        "tiers",
        "Two tiers have the same spend threshold; each tier needs its own.",
    ),
    "the first tier must start at min_spend 0": (
        "tiers",
        "The first tier starts at 0, so that every guest has a tier.",
    ),
    "qualifying needs skus or categories": (
        "qualifying-skus",
        "Name at least one SKU or category, or give stamps per purchase.",
    ),
    "a percent_off reward needs pct": ("reward-pct", "Enter the percent off."),
    "a fixed_off reward needs a positive value": ("reward-value", "Enter the amount off."),
    "stamp kind names must be unique": ("form", "Each stamp kind needs its own name."),
}


def _set(raw: dict[Any, Any], path: tuple[str | int, ...], value: Any) -> None:
    for key in path[:-1]:
        raw = raw.setdefault(key, {})
    raw[path[-1]] = value


def _tier_rows(kind: str, data: Mapping[str, str]) -> list[dict[str, str]]:
    """Rows posted as tier-<n>-<column>, in the order of n; blank and removed rows dropped."""
    numbers = sorted({int(m.group(1)) for k in data if (m := re.fullmatch(r"tier-(\d{1,3})-name", k))})
    rows = []
    for n in numbers:
        row = {c: str(data.get(f"tier-{n}-{c}") or "").strip() for c in TIER_COLUMNS}
        if data.get(f"tier-{n}-remove") or not any(row.values()):
            continue
        rows.append(row)
    return rows


def _message(e: Mapping[str, Any], f: Field | None, sep: str, _: Gettext) -> str:
    kind, ctx = e["type"], e.get("ctx") or {}

    def limit(value: Any) -> str:
        if f is not None and f.type == "money":
            return format_money(int(value), sep)
        return format_percent(value, sep) if f is not None and f.type == "percent" else str(value)

    if kind == "greater_than_equal":
        return _("Must be at least {limit}").format(limit=limit(ctx.get("ge")))
    if kind == "less_than_equal":
        return _("Must be at most {limit}").format(limit=limit(ctx.get("le")))
    if kind in ("missing", "string_too_short"):
        return _("Required")
    if kind == "string_too_long":
        return _("Too long: at most {n} characters").format(n=ctx.get("max_length"))
    if kind == "too_short":
        return _("Add at least one tier")
    if kind == "too_long":
        return _("At most {n} tiers").format(n=ctx.get("max_length"))
    if kind in ("decimal_max_places", "decimal_max_digits", "decimal_whole_digits"):
        return _("At most two digits after the comma")
    if kind == "literal_error":
        return _("Choose one of the options")
    return str(e["msg"])


def _input_name(kind: str, loc: tuple[Any, ...]) -> str:
    if not loc:
        return "form"
    if loc[0] == "tiers":
        if len(loc) >= 3 and isinstance(loc[1], int):
            column = "pct" if loc[2] == TIER_PCT.get(kind) else str(loc[2])
            return f"tier-{loc[1]}-{column}"
        return "tiers"
    name = "-".join(str(p) for p in loc if not isinstance(p, int) or loc[0] == "kinds")
    known = {f.name for f in fields_of(kind)}
    while name and name not in known:  # a nested model's own error: its first input
        if "-" not in name:
            return next((k for k in known if k.startswith(f"{name}-")), "form")
        name = name.rsplit("-", 1)[0]
    return name or "form"


def form_to_rules(
    kind: str, data: Mapping[str, str], _: Gettext = str, sep: str = ","
) -> tuple[RulesForm, Rules | None]:
    """Parse the posted form; the validated rules, or None with errors on the RulesForm."""
    model = RULES_BY_KIND[kind]
    fields = fields_of(kind)
    values = {f.name: str(data.get(f.name) or "").strip() for f in fields}
    form = RulesForm(kind, values)
    errors = form.errors
    raw: dict[str, Any] = {}

    def parse(name: str, type_: str, text: str) -> Any:
        try:
            return _PARSERS[type_](text)
        except FieldError as exc:
            errors[name] = _(str(exc))
            return None

    for f in fields:
        if f.name in ("tier_period", "tier_period_days", "stamp_mode", *kind_form.mode_names()):
            continue
        text = values[f.name]
        if f.type == "bool":
            _set(raw, f.path, bool(text))
        elif f.type == "choice":
            if text:
                _set(raw, f.path, text)
        elif f.type == "list":
            _set(raw, f.path, [p.strip() for p in text.split(",") if p.strip()])
        elif not text:
            if f.optional:
                _set(raw, f.path, None)
            # otherwise left out: the model's default applies, or it says "Required"
        elif f.type == "text":
            _set(raw, f.path, text)
        else:
            value = parse(f.name, f.type, text)
            if value is not None:
                _set(raw, f.path, value)

    if kind in TIER_PCT:
        if values["tier_period"] == "rolling":
            days = parse("tier_period_days", "int", values["tier_period_days"])
            if days is None and "tier_period_days" not in errors:
                errors["tier_period_days"] = _("Enter the number of days")
            raw["tier_period_days"] = days
        else:
            raw["tier_period_days"] = None
        rows = _tier_rows(kind, data)
        # Tiers are ordered by threshold whatever order they were typed in.
        spends = []
        for row in rows:
            try:
                spends.append(parse_money(row["min_spend"]))
            except FieldError:
                spends.append(None)
        if None not in spends:
            rows = [r for _s, r in sorted(zip(spends, rows, strict=True), key=lambda p: p[0] or 0)]
        form.tiers = rows
        raw["tiers"] = []
        for i, row in enumerate(rows):
            tier: dict[str, Any] = {}
            if row["name"]:
                tier["name"] = row["name"]
            for column, type_ in (("min_spend", "money"), ("pct", "percent")):
                value = parse(f"tier-{i}-{column}", type_, row[column])
                if value is not None:
                    tier["min_spend" if column == "min_spend" else TIER_PCT[kind]] = value
            raw["tiers"].append(tier)

    if kind == "stamp" and values["stamp_mode"] != "item":
        raw.pop("qualifying", None)  # stamps per purchase: the SKU lists are not used
    kept = kind_form.collect(raw, values, errors, _) if kind == "stamp" else []

    try:
        rules = model.model_validate(raw)
    except ValidationError as exc:
        by_name = {f.name: f for f in fields}
        for e in exc.errors(include_url=False, include_input=False):
            text = str(e["msg"]).removeprefix("Value error, ")
            loc = kind_form.remap(tuple(e["loc"]), kept)
            if e["type"] == "value_error" and text in _MODEL_MESSAGES:
                name, message = _MODEL_MESSAGES[text]
                message = _(message)
                if loc[:1] == ("kinds",) and len(loc) >= 2 and name != "form":
                    name = f"kinds-{loc[1]}-{name}"  # a kind's own cross-field rule
            else:
                name = _input_name(kind, loc)
                tier_column = name.rsplit("-", 1)[-1] if name.startswith("tier-") else None
                field_ = by_name.get(name) or (
                    Field(name, "money" if tier_column == "min_spend" else "percent", "", "")
                    if tier_column in ("min_spend", "pct")
                    else None
                )
                message = _message(e, field_, sep, _)
            errors.setdefault(name, message)  # a syntax error on the input wins
        return form, None
    if errors:
        return form, None
    return form, rules
