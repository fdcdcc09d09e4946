"""Request bodies of the program API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr


class ProgramIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["bonus", "discount", "stamp", "iiko"]
    name: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    rules: dict[str, Any]
    design: dict[str, Any] | None = None


class ProgramPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[StrictStr, Field(min_length=1, max_length=200)] | None = None
    rules: dict[str, Any] | None = None
    # The card look (programs/design.py); a change refreshes every issued card's pass.
    design: dict[str, Any] | None = None
    status: Literal["active", "archived"] | None = None
