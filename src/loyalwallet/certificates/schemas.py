"""Request bodies of the gift-certificate API. Money is StrictInt minor units."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

PositiveMoney = Annotated[StrictInt, Field(gt=0, le=10**11)]
Contact = Annotated[StrictStr, Field(min_length=3, max_length=200)]


class CertificateIn(BaseModel):
    """A sale: the amount paid for it (= its starting balance) and who it is from and for."""

    model_config = ConfigDict(extra="forbid")

    amount: PositiveMoney
    design: Annotated[StrictStr, Field(max_length=64)] | None = None
    message: Annotated[StrictStr, Field(max_length=500)] | None = None
    # Phone or e-mail; sealed at rest.
    buyer_contact: Contact | None = None
    recipient_contact: Contact | None = None
    recipient_name: Annotated[StrictStr, Field(max_length=200)] | None = None
    # Days it stays valid; absent = the merchant's setting (certificates.valid_days, 365
    # by default; null there = never expires).
    valid_days: Annotated[StrictInt, Field(ge=1, le=3650)] | None = None
    external_id: Annotated[StrictStr, Field(max_length=128)] | None = None
    location_id: StrictInt | None = None
    # Send the recipient the link to the certificate's web card: by SMS to a phone number,
    # by e-mail (amount, message, links) to an address.
    send_to_recipient: StrictBool = False


class RedemptionIn(BaseModel):
    """A spend without a loyalty card: the till says how much the certificate pays."""

    model_config = ConfigDict(extra="forbid")

    amount: PositiveMoney
    external_id: Annotated[StrictStr, Field(max_length=128)] | None = None
    location_id: StrictInt | None = None


class RedemptionRefundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: PositiveMoney | None = None  # absent = all that is left of the spend


class VoidIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[StrictStr, Field(min_length=3, max_length=500)]
