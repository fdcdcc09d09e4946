"""The ops part on admin pages: the setup checklist at the top of the dashboard
(analytics.pages.PANELS, set from wiring.DASHBOARD_PANELS)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from loyalwallet.ops import checklist


def setup_panel(session: Session, merchant_id: int) -> tuple[str, dict[str, Any]] | None:
    """The checklist until every item is done; then nothing."""
    items = checklist.items(session, merchant_id)
    done = sum(item.done for item in items)
    if done == len(items):
        return None
    return "admin/_setup.html", {"items": items, "done": done, "total": len(items)}
