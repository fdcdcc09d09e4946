"""Program rules: their shape (validated with pydantic) and the pure functions on them.

Percentages arrive as JSON numbers with at most two decimals (2.5 = 2.5 %) and are used
as integer basis points (250) in every computation, so no float ever touches money.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator

from loyalwallet.errors import DomainError, Explained
from loyalwallet.text import Term

Percent = Annotated[Decimal, Field(ge=0, le=100, max_digits=5, decimal_places=2)]
Money = Annotated[StrictInt, Field(ge=0, le=10**12)]
Points = Annotated[StrictInt, Field(ge=0, le=10**9)]


def bp(pct: Decimal) -> int:
    """Percent -> basis points (exact: at most two decimals are accepted)."""
    return int(pct * 100)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BonusTier(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    min_spend: Money
    cashback_pct: Percent


class DiscountTier(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    min_spend: Money
    discount_pct: Percent


def _check_tiers(tiers: list[Any]) -> None:
    names = [t.name for t in tiers]
    if len(set(names)) != len(names):
        raise ValueError("tier names must be unique")
    spends = [t.min_spend for t in tiers]
    if spends != sorted(spends) or len(set(spends)) != len(spends):
        raise ValueError("tiers must be listed by strictly increasing min_spend")
    if spends[0] != 0:
        raise ValueError("the first tier must start at min_spend 0")


class BonusRules(_Strict):
    tiers: Annotated[list[BonusTier], Field(min_length=1, max_length=20)]
    # None: spend counted over the card's lifetime; N: over the last N days.
    tier_period_days: Annotated[StrictInt, Field(ge=1, le=3660)] | None = None
    welcome_points: Points = 0
    birthday_points: Points = 0
    referral_points: Points = 0
    max_redeem_pct: Percent = Decimal(50)
    ttl_days: Annotated[StrictInt, Field(ge=1, le=3660)] | None = None
    accrual_base: Literal["paid", "after_discounts"] = "paid"
    pending_hours: Annotated[StrictInt, Field(ge=0, le=8760)] = 0
    min_check: Money = 0
    # Minor units one point is worth when paying: 100 = 1 point per rouble.
    point_value: Annotated[StrictInt, Field(ge=1, le=10**6)] = 100
    accrue_on_redeem: bool = True
    # When a refund takes back points the guest already spent: allow a negative
    # balance (repaid by the next accruals) or clamp at zero.
    refund_debt: Literal["allow", "clamp"] = "allow"

    @model_validator(mode="after")
    def _tiers(self) -> BonusRules:
        _check_tiers(self.tiers)
        return self


class DiscountRules(_Strict):
    tiers: Annotated[list[DiscountTier], Field(min_length=1, max_length=20)]
    tier_period_days: Annotated[StrictInt, Field(ge=1, le=3660)] | None = None

    @model_validator(mode="after")
    def _tiers(self) -> DiscountRules:
        _check_tiers(self.tiers)
        return self


class Qualifying(_Strict):
    skus: list[Annotated[str, Field(min_length=1, max_length=64)]] = []
    categories: list[Annotated[str, Field(min_length=1, max_length=64)]] = []

    @model_validator(mode="after")
    def _not_empty(self) -> Qualifying:
        if not self.skus and not self.categories:
            raise ValueError("qualifying needs skus or categories")
        return self

    def matches(self, sku: str | None, category: str | None) -> bool:
        return (sku is not None and sku in self.skus) or (
            category is not None and category in self.categories
        )


class StampReward(_Strict):
    kind: Literal["free_item", "percent_off", "fixed_off"] = "free_item"
    name: Annotated[str, Field(min_length=1, max_length=200)] = "Free item"
    # free_item: the most it takes off (0 = the matching item's price);
    # fixed_off: minor units; percent_off: use `pct`.
    value: Money = 0
    pct: Percent | None = None
    sku: str | None = None
    category: str | None = None
    valid_days: Annotated[StrictInt, Field(ge=1, le=3660)] | None = None

    @model_validator(mode="after")
    def _value(self) -> StampReward:
        if self.kind == "percent_off" and self.pct is None:
            raise ValueError("a percent_off reward needs pct")
        if self.kind == "fixed_off" and self.value <= 0:
            raise ValueError("a fixed_off reward needs a positive value")
        return self

    def coupon_value(self) -> int:
        return bp(self.pct) if self.kind == "percent_off" and self.pct is not None else self.value


class StampKind(_Strict):
    """One more kind of stamp on a stamp card (kinds 2..4; kind 1 is the programme's own
    fields): its own name, qualifying items, count and reward. `stamps_required` means
    what it means for kind 1 (see StampRules)."""

    name: Annotated[str, Field(min_length=1, max_length=60)]
    stamps_required: Annotated[StrictInt, Field(ge=2, le=100)]
    stamps_per_purchase: Annotated[StrictInt, Field(ge=1, le=100)] = 1
    qualifying: Qualifying | None = None
    stamps_per_item: Annotated[StrictInt, Field(ge=1, le=100)] = 1
    max_stamps_per_purchase: Annotated[StrictInt, Field(ge=1, le=1000)] | None = None
    min_amount: Money = 0
    reward: StampReward = StampReward()

    @property
    def stamps_to_collect(self) -> int:
        return stamps_to_collect(self.stamps_required)

    @property
    def free_visit(self) -> int:
        return self.stamps_required


MAX_STAMP_KINDS = 4


class StampRules(_Strict):
    """A stamp card. THE one definition of `stamps_required` (everything that shows or
    counts stamps reads it through `stamps_to_collect` / `free_visit`):

    `stamps_required = N` means the N-th visit is free: N - 1 paid stamps fill the card,
    the last stamp turns them into the reward at once, and the reward is used on the
    N-th visit (6: buy five cups, the sixth is free)."""

    stamps_required: Annotated[StrictInt, Field(ge=2, le=100)]
    stamps_per_purchase: Annotated[StrictInt, Field(ge=1, le=100)] = 1
    # When set, stamps are counted per qualifying item instead of per purchase.
    qualifying: Qualifying | None = None
    stamps_per_item: Annotated[StrictInt, Field(ge=1, le=100)] = 1
    max_stamps_per_purchase: Annotated[StrictInt, Field(ge=1, le=1000)] | None = None
    min_amount: Money = 0
    welcome_stamps: Annotated[StrictInt, Field(ge=0, le=100)] = 0
    reward: StampReward = StampReward()
    # Several stamp kinds on one card (issue 18): kind 1 is the fields above (named
    # `kind_name` when there are others), `kinds` lists kinds 2..4. Both absent = the
    # single-kind card it always was (and rules_to_json leaves them out).
    kind_name: Annotated[str, Field(min_length=1, max_length=60)] | None = None
    kinds: Annotated[list[StampKind], Field(max_length=MAX_STAMP_KINDS - 1)] = []

    @model_validator(mode="after")
    def _kinds(self) -> StampRules:
        names = [k.name for k in self.kinds]
        if self.kind_name is not None:
            names.append(self.kind_name)
        if len({n.casefold() for n in names}) != len(names):
            raise ValueError("stamp kind names must be unique")
        return self

    def stamp_kinds(self) -> list[StampKind]:
        """Every kind, kind 1 first (kind n is stamp_kinds()[n - 1])."""
        first = StampKind(
            name=self.kind_name or self.reward.name,
            stamps_required=self.stamps_required,
            stamps_per_purchase=self.stamps_per_purchase,
            qualifying=self.qualifying,
            stamps_per_item=self.stamps_per_item,
            max_stamps_per_purchase=self.max_stamps_per_purchase,
            min_amount=self.min_amount,
            reward=self.reward,
        )
        return [first, *self.kinds]

    @property
    def multi_kind(self) -> bool:
        return bool(self.kinds)

    def kind(self, number: int) -> StampKind:
        """Kind `number` (1-based); DomainError when the programme has no such kind."""
        kinds = self.stamp_kinds()
        if not 1 <= number <= len(kinds):
            raise Explained(
                "validation_error",
                "this programme has no stamp kind {number}",
                number=number,
                extra={"field": "stamp_kind"},
            )
        return kinds[number - 1]

    @property
    def stamps_to_collect(self) -> int:
        """Paid stamps that make a reward (the card's cells)."""
        return stamps_to_collect(self.stamps_required)

    @property
    def free_visit(self) -> int:
        """The visit on which the reward is used (the N of "the N-th is free")."""
        return self.stamps_required


def stamp_kinds_line(kinds: tuple[tuple[str, int, int], ...]) -> str:
    """ "Coffee 3/5 · Pastry 1/4": every stamp kind of a card, (name, held, cells) each."""
    return " · ".join(f"{name} {held}/{cells}" for name, held, cells in kinds)


def held_by_kind(
    rules: StampRules, stamps: int, kind_stamps: dict[str, Any] | None
) -> tuple[tuple[str, int, int], ...]:
    """(name, stamps held, cells) of each kind of a card, kind 1 first."""
    held = [stamps] + [int((kind_stamps or {}).get(str(n), 0)) for n in range(2, len(rules.kinds) + 2)]
    return tuple((k.name, h, k.stamps_to_collect) for k, h in zip(rules.stamp_kinds(), held, strict=True))


def stamps_to_collect(stamps_required: int) -> int:
    """Paid stamps per reward for a programme's `stamps_required` (see StampRules)."""
    return max(1, stamps_required - 1)


# The one sentence every page, pass and print uses for a stamp programme (translated
# by the caller: `_(msg) % params`).
STAMP_TERMS_PER_VISIT = "Paid visits: %(paid)s, then on visit %(n)s: %(reward)s"
STAMP_TERMS = "Stamps to collect: %(paid)s, then on the next visit: %(reward)s"


def stamp_terms(rules: StampRules | StampKind) -> tuple[str, dict[str, Any]]:
    """What the stamp card promises, as (message, params): one stamp a visit reads
    "Paid visits: 5, then on visit 6: Free coffee"; stamps per item or several a
    visit count stamps."""
    reward: str = rules.reward.name
    if reward == type(rules.reward).model_fields["name"].default:
        reward = Term(reward)  # our default name ("Free item"): shown in the reader's language
    params = {"paid": rules.stamps_to_collect, "n": rules.free_visit, "reward": reward}
    if rules.qualifying is None and rules.stamps_per_purchase == 1:
        return STAMP_TERMS_PER_VISIT, params
    return STAMP_TERMS, params


class IikoTier(BonusTier):
    """A tier of an iiko programme: a name (an iiko customer category maps to it in the
    connection) with its own card design; iiko decides who is in it."""

    min_spend: Money = 0
    cashback_pct: Percent = Decimal(0)


class IikoRules(BonusRules):
    """Programme kind "iiko": the loyalty engine is the café's iiko. Cards show iiko's
    balance and category; our ledger only mirrors iiko's balance (integrations/iiko),
    checkout refuses these cards (the till is iikoFront) and gifts are credited in iiko."""

    tiers: Annotated[list[IikoTier], Field(min_length=1, max_length=20)] = [IikoTier(name="Guest")]  # type: ignore[assignment]
    max_redeem_pct: Percent = Decimal(0)
    welcome_points: Annotated[StrictInt, Field(ge=0, le=0)] = 0
    birthday_points: Annotated[StrictInt, Field(ge=0, le=0)] = 0
    referral_points: Annotated[StrictInt, Field(ge=0, le=0)] = 0

    @model_validator(mode="after")
    def _tiers(self) -> IikoRules:
        names = [t.name for t in self.tiers]
        if len(set(names)) != len(names):
            raise ValueError("tier names must be unique")
        return self


Rules = BonusRules | DiscountRules | StampRules
RULES_BY_KIND: dict[str, type[BonusRules] | type[DiscountRules] | type[StampRules]] = {
    "bonus": BonusRules,
    "discount": DiscountRules,
    "stamp": StampRules,
    "iiko": IikoRules,
}


def parse_rules(kind: str, raw: dict[str, Any]) -> Rules:
    """Validate `raw` for `kind`; DomainError(validation_error) with field errors otherwise."""
    model = RULES_BY_KIND.get(kind)
    if model is None:
        raise Explained("validation_error", "unknown program kind {kind!r}", kind=kind)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors = [
            {"loc": ["rules", *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        raise DomainError("validation_error", "the program rules are not valid", errors=errors) from None


def rules_to_json(rules: Rules) -> dict[str, Any]:
    out = rules.model_dump(mode="json", exclude_none=False)
    if isinstance(rules, StampRules) and not rules.kinds and rules.kind_name is None:
        # A single-kind card stores and answers exactly what it did before kinds existed.
        out.pop("kinds", None)
        out.pop("kind_name", None)
    return out


def tier_for(tiers: list[BonusTier] | list[DiscountTier], spend: int) -> BonusTier | DiscountTier:
    """The highest tier whose min_spend the spend reaches (the first tier starts at 0)."""
    chosen = tiers[0]
    for tier in tiers:
        if spend >= tier.min_spend:
            chosen = tier
        else:
            break
    return chosen


def next_tier(tiers: list[BonusTier] | list[DiscountTier], spend: int) -> BonusTier | DiscountTier | None:
    for tier in tiers:
        if tier.min_spend > spend:
            return tier
    return None


def initial_tier(rules: Rules) -> str | None:
    return None if isinstance(rules, StampRules) else rules.tiers[0].name
