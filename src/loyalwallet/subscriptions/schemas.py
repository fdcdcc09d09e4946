"""Request bodies of the subscription API. Money is StrictInt minor units."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

Money = Annotated[StrictInt, Field(ge=0, le=10**11)]
Ref = Annotated[StrictStr, Field(min_length=1, max_length=64)]


class CoversIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    skus: Annotated[list[Ref], Field(max_length=200)] = []
    categories: Annotated[list[Ref], Field(max_length=200)] = []


class PlanIn(BaseModel):
    """A programme: "20 cups a month" = units 20, period_days 30; "a cup a day for 30
    days" = units 30, period_days 30, daily_limit 1."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    units: Annotated[StrictInt, Field(ge=1, le=1000)]
    period_days: Annotated[StrictInt, Field(ge=1, le=3660)]
    daily_limit: Annotated[StrictInt, Field(ge=1, le=1000)] | None = None
    price: Money
    # The lines one unit pays for; none listed = any line.
    covers: CoversIn = CoversIn()
    refund_policy: Literal["pro_rata", "none"] = "pro_rata"


class PlanChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[StrictStr, Field(min_length=1, max_length=200)] | None = None
    price: Money | None = None
    status: Literal["active", "archived"] | None = None


class SaleIn(BaseModel):
    """A sale at the till: the plan, the guest's card; the price is the plan's."""

    model_config = ConfigDict(extra="forbid")

    plan_id: StrictInt
    card: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    external_id: Annotated[StrictStr, Field(max_length=128)] | None = None
    location_id: StrictInt | None = None


class UseIn(BaseModel):
    """A use with no purchase (the cashier page): one unit."""

    model_config = ConfigDict(extra="forbid")

    external_id: Annotated[StrictStr, Field(max_length=128)] | None = None
    location_id: StrictInt | None = None


class RenewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_id: Annotated[StrictStr, Field(max_length=128)] | None = None
    location_id: StrictInt | None = None


class RefundIn(BaseModel):
    """Cancel the subscription and give money back: absent `amount` = the plan's policy
    (pro rata of the unused units, or nothing); never more than what was paid."""

    model_config = ConfigDict(extra="forbid")

    amount: Money | None = None
    reason: Annotated[StrictStr, Field(max_length=500)] | None = None
