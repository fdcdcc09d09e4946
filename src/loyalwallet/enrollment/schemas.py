"""Request bodies of the enrollment API (channels, join-form settings)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

ChannelKind = Literal["counter_qr", "table_tent", "website_widget", "instagram", "mailing", "other"]
Tag = Annotated[StrictStr, Field(min_length=1, max_length=100)]


class ChannelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    program_id: StrictInt
    kind: ChannelKind
    name: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    slug: Annotated[StrictStr, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,39}$")] | None = None
    location_id: StrictInt | None = None
    utm_source: Tag | None = None
    utm_medium: Tag | None = None
    utm_campaign: Tag | None = None
    offer: Annotated[StrictStr, Field(max_length=300)] | None = None
    invitation: StrictBool = False


class ChannelPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[StrictStr, Field(min_length=1, max_length=200)] | None = None
    location_id: StrictInt | None = None
    utm_source: Tag | None = None
    utm_medium: Tag | None = None
    utm_campaign: Tag | None = None
    offer: Annotated[StrictStr, Field(max_length=300)] | None = None
    invitation: StrictBool | None = None
    status: Literal["active", "archived"] | None = None
