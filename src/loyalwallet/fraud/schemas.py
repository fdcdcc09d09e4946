"""Request bodies of the anti-fraud, alerts and Telegram APIs."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from loyalwallet.fraud.rules import Burst, CountLimit, MoneyLimit, PointsLimit, Switch, Window


class RulesIn(BaseModel):
    """Only the rules given change; each is {"action": "off"|"alert"|"block", ...}."""

    model_config = ConfigDict(extra="forbid")

    max_accrual_per_day: PointsLimit | None = None
    max_redemption_per_day: PointsLimit | None = None
    max_purchases_per_hour: CountLimit | None = None
    own_card: Switch | None = None
    refund_window: Window | None = None
    refund_manager_only: Switch | None = None
    large_redemption: PointsLimit | None = None
    cashier_burst: Burst | None = None
    max_certificate_spend_per_day: MoneyLimit | None = None


class TelegramIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # A chat id (a number, negative for groups) or @channelname.
    chat_id: Annotated[StrictStr, Field(pattern=r"^(-?\d{1,20}|@\w{4,64})$")] | None = None
    # The merchant's own bot (from @BotFather); "" removes it (the installation's is used).
    bot_token: Annotated[StrictStr, Field(pattern=r"^(\d{3,20}:[\w-]{20,100})?$")] | None = None
    alerts: StrictBool | None = None
    digest: StrictBool | None = None
    digest_hour: Annotated[StrictInt, Field(ge=0, le=23)] | None = None
