"""Request bodies of the card API."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, field_validator

EMAIL_RE = re.compile(r"^[^@\s<>\"']+@[^@\s<>\"']+\.[^@\s<>\"']+$")


class CardIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    program_id: StrictInt
    phone: Annotated[StrictStr, Field(min_length=1, max_length=32)]
    name: Annotated[StrictStr, Field(max_length=200)] | None = None
    birthday: dt.date | None = None
    email: Annotated[StrictStr, Field(max_length=254)] | None = None
    channel: Annotated[StrictStr, Field(max_length=64)] | None = None
    referrer: Annotated[StrictStr, Field(max_length=64)] | None = None
    marketing_consent: StrictBool | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        v = (v or "").strip()
        return v or None

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        v = v.strip()
        if not EMAIL_RE.match(v):
            raise ValueError("not an email address")
        return v.lower()

    @field_validator("birthday")
    @classmethod
    def _birthday(cls, v: dt.date | None) -> dt.date | None:
        if v is not None and not (dt.date(1900, 1, 1) <= v <= dt.date.today()):
            raise ValueError("birthday must be between 1900 and today")
        return v


class CardPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["active", "blocked"]
    reason: Annotated[StrictStr, Field(max_length=500)] | None = None
