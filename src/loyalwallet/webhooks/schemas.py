"""Request bodies of the webhooks API."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

Url = Annotated[StrictStr, Field(min_length=8, max_length=2000)]
Events = Annotated[list[Annotated[StrictStr, Field(max_length=64)]], Field(max_length=50)]


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url
    # Event names to receive; empty or absent = every event.
    events: Events = []
    description: Annotated[StrictStr, Field(max_length=200)] = ""


class WebhookPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
    events: Events | None = None
    description: Annotated[StrictStr, Field(max_length=200)] | None = None
    active: StrictBool | None = None
