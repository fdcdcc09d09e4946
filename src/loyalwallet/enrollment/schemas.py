"""Request bodies of the enrollment API (channels, join-form settings)."""

from __future__ import annotations

import datetime as dt
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


class EnrollmentIn(BaseModel):
    """A cashier or POS enrolls a guest at the till: the guest gets the SMS code and
    tells it; the form's rules (required fields, regions) apply as on the join page."""

    model_config = ConfigDict(extra="forbid")

    program_id: StrictInt
    phone: Annotated[StrictStr, Field(min_length=1, max_length=32)]
    name: Annotated[StrictStr, Field(max_length=100)] | None = None
    birthday: dt.date | None = None
    email: Annotated[StrictStr, Field(max_length=254)] | None = None
    # The guest agreed to the processing of personal data (required: false is refused).
    personal_data_consent: StrictBool
    marketing_consent: StrictBool = False
    channel: Annotated[StrictStr, Field(max_length=64)] | None = None
    lang: Literal["ru", "en"] = "ru"
    # A plastic card handed out at the counter: its printed number (in one of the
    # programme's code ranges) becomes the new card's code once the guest confirms.
    card_code: Annotated[StrictStr, Field(min_length=4, max_length=64)] | None = None


class CodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Annotated[StrictStr, Field(min_length=1, max_length=20)]
