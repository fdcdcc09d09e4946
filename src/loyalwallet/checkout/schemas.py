"""Request bodies of the checkout API. Money is StrictInt: 350.0, "350" and true are refused."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StrictBool,
    StrictInt,
    StrictStr,
    model_serializer,
    model_validator,
)

Money = Annotated[StrictInt, Field(ge=0, le=10**11)]
PositiveMoney = Annotated[StrictInt, Field(gt=0, le=10**11)]


class LineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Annotated[StrictStr, Field(max_length=64)] | None = None
    name: Annotated[StrictStr, Field(max_length=200)] | None = None
    category: Annotated[StrictStr, Field(max_length=64)] | None = None
    qty: Annotated[StrictInt, Field(ge=1, le=10000)] = 1
    price: Money


class KindStampsIn(BaseModel):
    """Stamps of one stamp kind counted by hand at the till (a check without lines)."""

    model_config = ConfigDict(extra="forbid")

    kind: Annotated[StrictInt, Field(ge=1, le=4)]
    stamps: Annotated[StrictInt, Field(ge=0, le=100)]


class PurchaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    card: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    amount: PositiveMoney
    redeem_points: Annotated[StrictInt, Field(ge=0, le=10**9)] = 0
    items: Annotated[list[LineIn], Field(max_length=500)] | None = None
    coupon: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None = None
    # Use the card's oldest available reward (a full stamp card) without typing its code.
    use_reward: StrictBool = False
    external_id: Annotated[StrictStr, Field(max_length=128)] | None = None
    location_id: StrictInt | None = None
    # A gift certificate's code: it pays from what is left after discounts and points
    # (certificates.rules); `certificate_amount` exactly, or as much as it can.
    certificate: Annotated[StrictStr, Field(min_length=4, max_length=64)] | None = None
    certificate_amount: PositiveMoney | None = None
    # A subscription's id on this card: one unit pays for one piece of the dearest line
    # it covers (subscriptions.rules), after the points and before a certificate.
    subscription: Annotated[StrictInt, Field(ge=1)] | None = None
    # A stamp card: the stamps of these kinds as the cashier counted them, instead of
    # what the check lines give (programs.rules.StampRules.kinds).
    stamps_by_kind: Annotated[list[KindStampsIn], Field(max_length=4)] | None = None

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Without a subscription the dump (and so the Idempotency-Key's body hash) is what
        # it was before the field existed: a retry spanning the upgrade still replays.
        data: dict[str, Any] = handler(self)
        for optional in ("subscription", "stamps_by_kind"):
            if data.get(optional) is None:
                data.pop(optional, None)
        return data

    @model_validator(mode="after")
    def _items_add_up(self) -> PurchaseIn:
        if self.items:
            total = sum(line.qty * line.price for line in self.items)
            if total != self.amount:
                raise ValueError(f"amount {self.amount} is not the sum of the items ({total})")
        if self.coupon and self.use_reward:
            raise ValueError("give either coupon or use_reward, not both")
        if self.certificate_amount is not None and self.certificate is None:
            raise ValueError("certificate_amount needs a certificate")
        if self.stamps_by_kind and len({k.kind for k in self.stamps_by_kind}) != len(self.stamps_by_kind):
            raise ValueError("stamps_by_kind names each kind once")
        return self


class RefundLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line: Annotated[StrictInt, Field(ge=0)]  # position in the purchase's items, from 0
    qty: Annotated[StrictInt, Field(ge=1, le=10000)] = 1


class RefundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: PositiveMoney | None = None
    lines: Annotated[list[RefundLineIn], Field(min_length=1, max_length=500)] | None = None
    reason: Annotated[StrictStr, Field(max_length=500)] | None = None

    @model_validator(mode="after")
    def _one_way(self) -> RefundIn:
        if self.amount is not None and self.lines is not None:
            raise ValueError("give either amount or lines, not both")
        return self


class AdjustmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    points: Annotated[StrictInt, Field(ge=-(10**9), le=10**9)] = 0
    stamps: Annotated[StrictInt, Field(ge=-1000, le=1000)] = 0
    # Which stamp kind the stamps are of (a card with several kinds; 1 otherwise).
    stamp_kind: Annotated[StrictInt, Field(ge=1, le=4)] = 1
    reason: Annotated[StrictStr, Field(min_length=3, max_length=500)]
