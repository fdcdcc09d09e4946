"""The fast certificate spend's two statements (certificates/fast.py).

Statement 1 reads, without a lock and outside a transaction, the certificate, its row
version (xmin), the merchant's fraud rules and time zone, what was spent from it today,
the answer stored under the Idempotency-Key and the spend entry's id. Statement 2 is
one atomic data-modifying WITH, its own transaction: it claims the key, sets the balance
only if the row is still the version statement 1 read, and writes the spend entry, the
outbox row and the stored answer only if it did; if either did not happen (another
write to the certificate, or the key claimed, in between) it fails with a division by
zero, which undoes all of it, and fast.py hands the spend to the general path. Every
write to a certificate (a spend, a refund, the expiry, a cancel) changes its row, so an
unchanged row means statement 1's balance, status and spent-today are still true.

The texts are fixed (two variants of each: with a key or not), so asyncpg prepares each
once per connection. The pool is the purchase fast path's (checkout.fast_sql.pool).
"""

from __future__ import annotations

from loyalwallet.certificates.models import GiftCertificate

# Every column of the certificate (the view reads them; a column added later comes along).
CERT_COLUMNS = tuple(c.name for c in GiftCertificate.__table__.columns)
_COLS = ", ".join(f"g.{c}" for c in CERT_COLUMNS)

# The start of the merchant's local day of $3 (fraud.service._local_midnight, in SQL:
# fast.py checks both agree, else the general path answers).
_MIDNIGHT = "(date_trunc('day', $3::timestamptz AT TIME ZONE m.timezone) AT TIME ZONE m.timezone)"

# The answer stored under the key ($4 scope, $5 key).
_STORED = (
    "(SELECT json_build_array(r.request_hash, r.status_code, r.response, r.expires_at)"
    " FROM idempotency_records r WHERE r.merchant_id = $1 AND r.scope = $4 AND r.key = $5) AS stored"
)


def _read(key: bool) -> str:
    return f"""
SELECT nextval(pg_get_serial_sequence('certificate_entries', 'id')) AS entry_id,
       {_COLS},
       g.xmin::text AS row_version,
       m.settings -> 'fraud' AS fraud,
       m.timezone AS tz,
       {_MIDNIGHT} AS midnight,
       (SELECT coalesce(sum(-e.amount), 0) FROM certificate_entries e
         WHERE e.certificate_id = g.id AND e.kind = 'spend' AND e.created_at >= {_MIDNIGHT}) AS spent_today,
       {_STORED if key else "NULL::json AS stored"}
FROM gift_certificates g JOIN merchants m ON m.id = g.merchant_id
WHERE g.merchant_id = $1 AND g.code = $2
"""


# Statement 1. Parameters: $1 merchant, $2 code, $3 now; with a key $4 scope, $5 key.
READ = {True: _read(True), False: _read(False)}


def _write(key: bool) -> str:
    claim = """claim AS (
    INSERT INTO idempotency_records (merchant_id, scope, key, request_hash, status_code, response,
                                     created_at, expires_at)
    VALUES ($2, $15, $16, $17, 201, $14::json, $9, $18)
    ON CONFLICT (merchant_id, scope, key) DO NOTHING RETURNING id
), """
    return f"""
WITH {claim if key else ""}cert AS (
    UPDATE gift_certificates SET balance = $10, updated_at = $9
    WHERE id = $3 AND xmin::text = $11{" AND EXISTS (SELECT 1 FROM claim)" if key else ""}
    RETURNING id
), entry AS (
    INSERT INTO certificate_entries (id, merchant_id, certificate_id, kind, amount, location_id,
                                     external_id, actor_type, actor_id, created_at)
    SELECT $1, $2, cert.id, 'spend', $4, $5, $6, $7, $8, $9 FROM cert
), event AS (
    INSERT INTO outbox (merchant_id, topic, payload, status, attempts, max_attempts, priority,
                        next_attempt_at, created_at)
    SELECT $2, 'event', $12::json, 'pending', 0, 12, $13, $9, $9 FROM cert
)
SELECT 1 / (SELECT count(*)::int FROM cert)
"""


# Statement 2: what certificates.service.redeem writes (idempotency.claim and store's
# record, ledger.move's entry and balance, emit_event's outbox row). Parameters: $1 entry
# id, $2 merchant, $3 certificate, $4 amount (negative), $5 location, $6 external id, $7
# actor kind, $8 actor id, $9 now, $10 the new balance, $11 the row version read, $12 the
# event, $13 the outbox lane; with a key $14 the answer, $15 scope, $16 key, $17 body
# hash, $18 the key's expiry.
WRITE = {True: _write(True), False: _write(False)}
