"""Request bodies of the campaigns, triggers and offers APIs."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from loyalwallet.campaigns.rules import Segment

Name = Annotated[StrictStr, Field(min_length=1, max_length=200)]
Header = Annotated[StrictStr, Field(min_length=1, max_length=100)]
Body = Annotated[StrictStr, Field(min_length=1, max_length=500)]
Points = Annotated[StrictInt, Field(ge=0, le=10**6)]
Holdout = Annotated[Decimal, Field(ge=0, le=50, max_digits=4, decimal_places=2)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SegmentIn(_In):
    segment: Segment = Segment()


class CampaignIn(_In):
    name: Name
    segment: Segment = Segment()
    header: Header
    body: Body
    points: Points = 0
    offer_id: StrictInt | None = None
    # Share of the segment kept out as a control group (percent, 0..50).
    holdout_pct: Holdout = Decimal(0)
    send_now: StrictBool = False
    scheduled_at: AwareDatetime | None = None
    channel: Literal["wallet", "email", "telegram", "sms"] = "wallet"
    # SMS: at most this many messages (parts) / this cost in minor units.
    cap_messages: Annotated[StrictInt, Field(ge=1)] | None = None
    cap_cost: Annotated[StrictInt, Field(ge=1)] | None = None


class CampaignPatch(_In):
    name: Name | None = None
    segment: Segment | None = None
    header: Header | None = None
    body: Body | None = None
    points: Points | None = None
    offer_id: StrictInt | None = None
    holdout_pct: Holdout | None = None
    channel: Literal["wallet", "email", "telegram", "sms"] | None = None
    cap_messages: Annotated[StrictInt, Field(ge=1)] | None = None
    cap_cost: Annotated[StrictInt, Field(ge=1)] | None = None


class ScheduleIn(_In):
    scheduled_at: AwareDatetime


def campaign_fields(body: CampaignIn | CampaignPatch) -> dict[str, Any]:
    """The set fields of a campaign body as the service takes them."""
    out = body.model_dump(exclude_unset=True)
    if isinstance(out.get("segment"), dict) and body.segment is not None:
        out["segment"] = body.segment.model_dump(mode="json", exclude_none=True)
    if "holdout_pct" in out and out["holdout_pct"] is not None:
        out["holdout_pct"] = float(out["holdout_pct"])
    return out


class TriggerIn(_In):
    kind: Literal[
        "birthday", "points_expiring", "lapsed", "happy_hour", "tier_up", "welcome", "subscription_ending"
    ]
    name: Name | None = None
    program_id: StrictInt | None = None
    enabled: StrictBool = True
    # By kind (campaigns.rules): message {header, body}, points, offer_id, segment,
    # send_at "HH:MM"; birthday: days_before; points_expiring: days_before;
    # lapsed: days, max_days; happy_hour: weekdays [1..7], start, end; tier_up: tiers.
    params: dict[str, Any]


class TriggerPatch(_In):
    name: Name | None = None
    program_id: StrictInt | None = None
    enabled: StrictBool | None = None
    params: dict[str, Any] | None = None


class OfferPatch(_In):
    name: Name | None = None
    description: Annotated[StrictStr, Field(max_length=500)] | None = None
    pct: Annotated[Decimal, Field(gt=0, le=100, max_digits=5, decimal_places=2)] | None = None
    value: Annotated[StrictInt, Field(ge=0, le=10**11)] | None = None
    sku: Annotated[StrictStr, Field(max_length=64)] | None = None
    category: Annotated[StrictStr, Field(max_length=64)] | None = None
    min_amount: Annotated[StrictInt, Field(ge=0, le=10**11)] | None = None
    program_id: StrictInt | None = None
    uses_per_coupon: Annotated[StrictInt, Field(ge=1, le=1000)] | None = None
    valid_days: Annotated[StrictInt, Field(ge=1, le=3660)] | None = None
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None
    max_issued: Annotated[StrictInt, Field(ge=1, le=10**7)] | None = None
    status: Literal["active", "archived"] | None = None


class IssueIn(_In):
    card: Annotated[StrictStr, Field(min_length=1, max_length=64)]


class BatchIn(_In):
    count: Annotated[StrictInt, Field(ge=1, le=10_000)]
    name: Annotated[StrictStr, Field(max_length=200)] = ""


class RevokeIn(_In):
    reason: Annotated[StrictStr, Field(max_length=500)] | None = None
