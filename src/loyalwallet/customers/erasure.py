"""What erasing a guest does beyond their own row: every JSON copy of their data goes too.

A guest's name, phone, e-mail or birthday can be copied into JSON columns of other parts'
tables: an old Idempotency-Key answer, an outbox row (an SMS, a webhook delivery body), an
audit entry, a fraud alert's details. `scrub` walks every JSON column of the merchant's rows
that contain one of the values (a cheap text pre-filter first) and replaces the value inside
each string with "[erased]", keeping the JSON's shape. `after_commit` then asks SQLite to
fold the write-ahead log into the database file and truncate it, so old page versions
holding the data are not left in the -wal file (the database itself runs with
secure_delete, so freed bytes are zeroed; see db.py).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import String, Table, cast, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.types import JSON

from loyalwallet import db

log = logging.getLogger("loyalwallet.customers")

ERASED = "[erased]"
MIN_LENGTH = 4  # shorter values ("Al") would match unrelated text


def values_of(plain: dict[str, Any]) -> list[str]:
    """The strings to erase from a guest's decrypted fields (phone in E.164 and as digits)."""
    out: set[str] = set()
    for key in ("name", "email", "birthday", "phone"):
        value = plain.get(key)
        if value:
            out.add(str(value))
    phone = plain.get("phone")
    if phone:
        out.add(str(phone).lstrip("+"))
    return sorted((v for v in out if len(v) >= MIN_LENGTH), key=len, reverse=True)


def redact(text: str | None, values: list[str]) -> str | None:
    if text is None:
        return None
    for value in values:
        text = text.replace(value, ERASED)
    return text


def _redact_json(value: Any, values: list[str]) -> Any:
    if isinstance(value, str):
        return redact(value, values)
    if isinstance(value, list):
        return [_redact_json(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _redact_json(v, values) for k, v in value.items()}
    return value


def _json_tables() -> list[tuple[Table, list[str]]]:
    out = []
    for table in db.Base.metadata.tables.values():
        columns = [c.name for c in table.c if isinstance(c.type, JSON)]
        if columns and "merchant_id" in table.c and "id" in table.c:
            out.append((table, columns))
    return out


def scrub(session: Session, merchant_id: int, values: list[str]) -> int:
    """Replace `values` in every JSON column of the merchant's rows; the rows changed."""
    if not values:
        return 0
    changed = 0
    for table, columns in _json_tables():
        for column in columns:
            col = table.c[column]
            text = cast(col, String)
            rows = session.execute(
                select(table.c.id, col).where(
                    table.c.merchant_id == merchant_id,
                    or_(*(text.contains(v, autoescape=True) for v in values)),
                )
            ).all()
            for row_id, data in rows:
                session.execute(
                    update(table).where(table.c.id == row_id).values({column: _redact_json(data, values)})
                )
                changed += 1
    return changed


def after_commit() -> None:
    """On SQLite: checkpoint the WAL and truncate it (old page versions hold the data)."""
    if not db.is_sqlite():
        return
    try:
        raw = db.get_engine().raw_connection()  # autocommit: no BEGIN around the PRAGMA
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()
    except Exception:  # best effort: a busy database checkpoints on its own later
        log.warning("could not truncate the SQLite WAL after an erase", exc_info=True)
