"""Which wallet a card lives in, for "cards issued by wallet" on the dashboard.

- Apple Wallet: a device has registered the pass with our PassKit web service (the row
  goes away when the pass is deleted from the phone).
- Google Wallet: not counted yet. Google tells an issuer about saves only through its
  save callbacks, which the Google part does not receive; a `google_objects` row only
  means a save link was made. When it records saves, append its query here.
- Everything else counts as a web card.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, literal, select

from loyalwallet.analytics.queries import WALLET_SOURCES


def apple() -> Select[Any]:
    from loyalwallet.wallet.apple.models import AppleRegistration

    return (
        select(AppleRegistration.card_id, literal("apple").label("wallet"))
        .where(AppleRegistration.card_id.is_not(None))
        .distinct()
    )


if apple not in WALLET_SOURCES:
    WALLET_SOURCES.append(apple)
