"""Which wallet a card lives in, for "cards issued by wallet" on the dashboard
(listed in wiring.WALLET_SOURCES).

- Apple Wallet: a device has registered the pass with our PassKit web service (the row
  goes away when the pass is deleted from the phone).
- Google Wallet: the card's loyaltyObject has users (Google's read-only `hasUsers`, as
  last seen in an answer of Google: see wallet/google/saves.py). A `google_objects` row
  alone only means a save link was made: such cards count as web cards.
- Everything else counts as a web card. A card in both wallets counts as Apple.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, literal, select


def apple() -> Select[Any, str]:
    from loyalwallet.wallet.apple.models import AppleRegistration

    return (
        select(AppleRegistration.card_id, literal("apple").label("wallet"))
        .where(AppleRegistration.card_id.is_not(None))
        .distinct()
    )


def google() -> Select[Any, str]:
    from loyalwallet.wallet.google.models import GoogleObject

    return select(GoogleObject.card_id, literal("google").label("wallet")).where(
        GoogleObject.has_users.is_(True)
    )
