"""Request bodies of the merchant API (locations, API keys, staff)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

Role = Literal["owner", "manager", "cashier"]


class LocationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    address: Annotated[StrictStr, Field(max_length=500)] | None = None
    phone: Annotated[StrictStr, Field(max_length=32)] | None = None
    latitude: Annotated[StrictFloat | StrictInt, Field(ge=-90, le=90)] | None = None
    longitude: Annotated[StrictFloat | StrictInt, Field(ge=-180, le=180)] | None = None


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    role: Role = "cashier"
    location_id: StrictInt | None = None


class StaffIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    login: Annotated[StrictStr, Field(min_length=3, max_length=200)]
    password: Annotated[StrictStr, Field(min_length=8, max_length=200)]
    role: Role
    name: Annotated[StrictStr, Field(max_length=200)] = ""
    location_ids: list[StrictInt] = []
    phone: Annotated[StrictStr, Field(max_length=32)] | None = None
