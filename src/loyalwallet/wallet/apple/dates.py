"""HTTP dates of passes: Last-Modified promised to devices and If-Modified-Since checked."""

from __future__ import annotations

import datetime as dt
from email.utils import format_datetime, parsedate_to_datetime

from loyalwallet.db import utcnow

SAME_SECOND_GRACE = dt.timedelta(seconds=2)


def last_modified(changed: dt.datetime, now: dt.datetime | None = None) -> dt.datetime:
    """The Last-Modified to promise for a pass changed at `changed`. HTTP dates have
    whole seconds: a second change within the same second would look unmodified to a
    device asking If-Modified-Since, so while that second (plus clock skew between our
    servers) is not over we promise one second less; the device fetches once more later
    and gets the exact date then."""
    now = now or utcnow()
    floor = changed.replace(microsecond=0)
    if now - changed < SAME_SECOND_GRACE:
        return floor - dt.timedelta(seconds=1)
    return floor


def http_date(value: dt.datetime) -> str:
    return format_datetime(value.astimezone(dt.UTC), usegmt=True)


def not_modified(changed: dt.datetime, if_modified_since: str | None) -> bool:
    if not if_modified_since:
        return False
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):
        return False
    if since is None:
        return False
    if since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    return changed.replace(microsecond=0) <= since
