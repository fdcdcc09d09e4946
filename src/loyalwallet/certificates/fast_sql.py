"""The fast certificate spend's statements (certificates/fast.py).

Statement 1 claims the Idempotency-Key, locks the certificate and reads what the rules
need (the merchant's fraud rules and time zone, what was spent from it today, the answer
stored under the key, the spend entry's id) in one round trip; statement 2 writes the
spend entry, the balance, the outbox row and the stored answer in one data-modifying
WITH. The texts are fixed (two variants of statement 1: with a key or not), so asyncpg
prepares each once per connection. The pool is the purchase fast path's
(checkout.fast_sql.pool).
"""

from __future__ import annotations

from loyalwallet.certificates.models import GiftCertificate

# Every column of the certificate (the view reads them; a column added later comes along).
CERT_COLUMNS = tuple(c.name for c in GiftCertificate.__table__.columns)
_COLS = ", ".join(f"g.{c}" for c in CERT_COLUMNS)

# The start of the merchant's local day of $3 (fraud.service._local_midnight, in SQL:
# fast.py checks both agree, else the general path answers).
_MIDNIGHT = "(date_trunc('day', $3::timestamptz AT TIME ZONE m.timezone) AT TIME ZONE m.timezone)"

_CLAIM = """
WITH claim AS (
    INSERT INTO idempotency_records (merchant_id, scope, key, request_hash, created_at, expires_at)
    VALUES ($1, $4, $5, $6, $3, $7)
    ON CONFLICT (merchant_id, scope, key) DO NOTHING RETURNING id
)"""

# The answer stored under the key, when the key was claimed before this statement began
# (a replay answered from statement 1).
_STORED = (
    "(SELECT json_build_array(r.request_hash, r.status_code, r.response, r.expires_at)"
    " FROM idempotency_records r WHERE r.merchant_id = $1 AND r.scope = $4 AND r.key = $5) AS stored"
)


def _read(key: bool) -> str:
    return f"""{_CLAIM if key else ""}
SELECT {"(SELECT id FROM claim)" if key else "NULL::bigint"} AS record_id,
       nextval(pg_get_serial_sequence('certificate_entries', 'id')) AS entry_id,
       {_COLS},
       g.xmin::text AS row_xmin,
       (SELECT s.xmin::text FROM gift_certificates s WHERE s.id = g.id) AS snapshot_xmin,
       m.settings -> 'fraud' AS fraud,
       m.timezone AS tz,
       {_MIDNIGHT} AS midnight,
       (SELECT coalesce(sum(-e.amount), 0) FROM certificate_entries e
         WHERE e.certificate_id = g.id AND e.kind = 'spend' AND e.created_at >= {_MIDNIGHT}) AS spent_today,
       {_STORED if key else "NULL::json AS stored"}
FROM gift_certificates g JOIN merchants m ON m.id = g.merchant_id
WHERE g.merchant_id = $1 AND g.code = $2
FOR UPDATE OF g
"""


# Statement 1. Parameters: $1 merchant, $2 code, $3 now; with a key $4 scope, $5 key,
# $6 body hash, $7 the key's expiry.
READ = {True: _read(True), False: _read(False)}

# What was spent today, read again under the lock when a spend of this certificate
# committed while statement 1 waited for it (its snapshot did not see that spend):
# $1 certificate, $2 midnight.
SPENT_TODAY = (
    "SELECT coalesce(sum(-amount), 0) FROM certificate_entries"
    " WHERE certificate_id = $1 AND kind = 'spend' AND created_at >= $2"
)

# Statement 2: what certificates.service.redeem writes (ledger.move's entry and balance,
# emit_event's outbox row, idempotency.store's answer; no key: $14 is NULL).
WRITE = """
WITH entry AS (
    INSERT INTO certificate_entries (id, merchant_id, certificate_id, kind, amount, location_id,
                                     external_id, actor_type, actor_id, created_at)
    VALUES ($1, $2, $3, 'spend', $4, $5, $6, $7, $8, $9)
), cert AS (
    UPDATE gift_certificates SET balance = $10, updated_at = $9 WHERE id = $3
), event AS (
    INSERT INTO outbox (merchant_id, topic, payload, status, attempts, max_attempts, priority,
                        next_attempt_at, created_at)
    VALUES ($2, 'event', $11::json, 'pending', 0, 12, $12, $9, $9)
), answer AS (
    UPDATE idempotency_records SET status_code = 201, response = $13::json WHERE id = $14
)
SELECT 1
"""
