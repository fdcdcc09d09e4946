"""Who is acting: an API key or a logged-in staff member, with a role and a merchant."""

from __future__ import annotations

from dataclasses import dataclass

from loyalwallet.errors import DomainError, Explained

RANK = {"cashier": 1, "manager": 2, "owner": 3}


@dataclass(frozen=True)
class Actor:
    merchant_id: int
    role: str
    kind: str  # api_key | staff | system | guest
    id: int | None = None
    # The location an API key is bound to, or the staff member's current one.
    location_id: int | None = None
    # Locations a cashier may work at; None means every location of the merchant.
    location_ids: frozenset[int] | None = None
    # Blind index of a staff member's own phone (a cashier cannot serve their own card).
    phone_index: str | None = None
    name: str = ""

    def at_least(self, role: str) -> bool:
        return RANK.get(self.role, 0) >= RANK[role]

    def require(self, role: str) -> None:
        if not self.at_least(role):
            raise Explained("forbidden", "this needs the {role} role or higher", role=role)

    def check_location(self, location_id: int | None) -> None:
        if location_id is not None and self.location_ids is not None and location_id not in self.location_ids:
            raise DomainError("forbidden", "this staff member is not bound to that location")


def system(merchant_id: int) -> Actor:
    return Actor(merchant_id=merchant_id, role="owner", kind="system")
