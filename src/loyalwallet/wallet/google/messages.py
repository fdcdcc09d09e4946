"""Batched campaign messages: one `google.message` row per campaign or trigger chunk,
{"cards": [[card_id, message_id], ...], "header", "body", "batch"} (a card whose text is
not the row's: [card_id, message_id, header, body]), its addMessage calls
sent in Google's batch requests (client.WalletClient.batch: BATCH_SIZE calls per round
trip over the process's pooled client; several batches of a big chunk concurrently, at
most CONCURRENCY at once per process). Each inner answer is handled as a single call's.

Per card, what became of its message is recorded in google_message_sends (sent, skipped,
failed) in the transaction that records the object's messages: a retried chunk skips
the cards done (and Google's object keeps the message ids, so a card whose outcome was
lost with a crash is still not messaged twice: its id is in google_objects.messages).
A card Google refuses for good is recorded `failed` and does not hold up the others;
the cards to try again (an outage, a 5xx, a row another worker holds) are returned to
the handler, which queues them again on their own.

The chunk is read in one statement (objects and their cards), the outcomes written in
a few statements whatever its size. Rare cases go through the one-card path of sync.py
after the chunk (an object not at Google yet, or deleted there: it is inserted first).

PostgreSQL: the chunk's object rows are locked (SKIP LOCKED) for the sends, as the
one-card path does, so a `google.patch` and a message never cross. SQLite: the
notification slots are taken in a short write transaction before the calls and the
outcome written in another (never a write transaction across calls to Google).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from sqlalchemy import bindparam, delete, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from loyalwallet import db
from loyalwallet.cards.models import Card
from loyalwallet.config import env
from loyalwallet.db import UTCDateTime
from loyalwallet.errors import DomainError
from loyalwallet.outbox.models import OutboxMessage
from loyalwallet.wallet.google import objects
from loyalwallet.wallet.google.client import GoogleApiError, WalletClient, access_token, answer_error
from loyalwallet.wallet.google.issuer import Issuer, id_prefix, issuer_for
from loyalwallet.wallet.google.models import GoogleMessageSend, GoogleObject
from loyalwallet.wallet.google.sync import MAX_MESSAGES, NOTIFY_PER_DAY, _recent, saved_values, send_message

TOPIC = "google.message"

# Calls per batch request: a chunk of 100 cards is one round trip.
BATCH_SIZE = int(env("GOOGLE_BATCH_SIZE", "100") or 100)
# Batch requests in flight at once per process (shared by the worker's threads), for
# chunks bigger than BATCH_SIZE.
CONCURRENCY = int(env("GOOGLE_CONCURRENCY", "8") or 8)

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="google-send")
        return _pool


@dataclass
class Job:
    card_id: int
    message_id: str
    object_id: str
    messages: list[Any]
    notified_at: list[Any]
    notify: bool
    header: str = ""
    body: str = ""
    # Filled by the send:
    status: str = ""  # sent | failed | retry | fallback
    error: str = ""
    retry_after: float | None = None
    answer: dict[str, Any] | None = None
    kept: list[Any] = field(default_factory=list)
    message: dict[str, Any] = field(default_factory=dict)


@dataclass
class BatchResult:
    done: int = 0  # sent, skipped or failed for good (recorded)
    retry: list[tuple[int, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # why the retried ones failed
    retry_after: float | None = None
    failed: list[str] = field(default_factory=list)  # why some were refused for good


def _fail(job: Job, exc: Exception) -> None:
    """Classify a failed call of this card: retried later, or refused for good."""
    if isinstance(exc, GoogleApiError):
        if exc.status == 404:  # deleted at Google meanwhile: the one-card path inserts it again
            job.status = "fallback"
        elif exc.retryable or exc.status == 401:
            job.status, job.error, job.retry_after = "retry", str(exc), exc.retry_after
        else:
            job.status, job.error = "failed", str(exc)
    else:
        job.status, job.error = "retry", f"Google Wallet unreachable: {type(exc).__name__}: {exc}"


def _calls(client: WalletClient, jobs: list[Job], make: Any) -> list[tuple[Job, int, dict[str, Any]]]:
    """One batch request per BATCH_SIZE jobs, the batches concurrent over the pooled
    client; (job, status, answer) of each call. A batch that fails as a whole fails its
    jobs (classified as a single call's failure)."""
    groups = [jobs[i : i + BATCH_SIZE] for i in range(0, len(jobs), BATCH_SIZE)]

    def run(group: list[Job]) -> list[tuple[Job, int, dict[str, Any]]]:
        try:
            answers = client.batch([make(j) for j in group])
        except (GoogleApiError, httpx.HTTPError) as exc:
            for job in group:
                _fail(job, exc)
            return []
        return [(job, status, doc) for job, (status, doc) in zip(group, answers, strict=True)]

    if len(groups) == 1:
        return run(groups[0])
    return [r for part in pool().map(run, groups) for r in part]


def _send_all(client: WalletClient, jobs: list[Job]) -> None:
    """The chunk's addMessage calls in batches (no database here): objects holding 10
    messages are trimmed first (a patch), and a message over Google's own notification
    count goes again as TEXT (shown without a notification)."""
    for job in jobs:
        job.kept = list(job.messages)
        job.message = {
            "id": job.message_id,
            "header": job.header,
            "body": job.body,
            "messageType": "TEXT_AND_NOTIFY" if job.notify else "TEXT",
        }
    full = [j for j in jobs if len(j.kept) >= MAX_MESSAGES]
    for job in full:
        job.kept = job.kept[-(MAX_MESSAGES - 1) :]
    patch = "PATCH"
    for job, status, doc in _calls(client, full, lambda j: (patch, _path(j.object_id), {"messages": j.kept})):
        if status >= 400:
            _fail(job, answer_error(status, doc))
        else:
            job.answer = doc
    todo = [j for j in jobs if not j.status]
    for _ in range(2):  # the second round: the notifying ones Google's count refused, as TEXT
        again = []
        for job, status, doc in _calls(
            client, todo, lambda j: ("POST", _path(j.object_id, "addMessage"), {"message": j.message})
        ):
            if status == 429 and job.notify:
                job.notify = False
                job.message["messageType"] = "TEXT"
                again.append(job)
            elif status >= 400:
                _fail(job, answer_error(status, doc))
            else:
                if isinstance(doc.get("resource"), dict):
                    job.answer = doc["resource"]
                job.status = "sent"
        todo = again
    for job in todo:
        _fail(job, GoogleApiError(429, "notification quota"))


def _path(object_id: str, verb: str = "") -> str:
    return WalletClient._path("loyaltyObject", object_id, verb)


def _sends_insert(session: Session) -> Any:
    return (sqlite if db.is_sqlite() else postgresql).insert(GoogleMessageSend)


def _record_sends(session: Session, merchant_id: int | None, batch: str, rows: list[dict[str, Any]]) -> None:
    """The cards' outcome rows, one statement (PostgreSQL: from arrays; else executemany)."""
    if not rows:
        return
    now = db.utcnow()
    if not db.is_sqlite():
        doc = [
            {
                "message_id": r["message_id"],
                "card_id": r["card_id"],
                "status": r["status"],
                "error": r.get("error"),
            }
            for r in rows
        ]
        session.execute(
            _PG_SENDS,
            {"merchant_id": merchant_id, "batch": batch[:64], "now": now, "rows": orjson.dumps(doc).decode()},
        )
        return
    values = [
        {"merchant_id": merchant_id, "batch": batch[:64], "created_at": now, "error": None, **r} for r in rows
    ]
    session.execute(_sends_insert(session).on_conflict_do_nothing(), values)  # executemany: compiled once


_PG_SENDS = text(
    """
    INSERT INTO google_message_sends (message_id, card_id, merchant_id, batch, status, error, created_at)
    SELECT u.message_id, u.card_id, :merchant_id, :batch, u.status, u.error, :now
    FROM json_to_recordset(CAST(:rows AS JSON)) AS u(message_id TEXT, card_id BIGINT, status TEXT, error TEXT)
    ON CONFLICT DO NOTHING
    """
).bindparams(bindparam("now", type_=UTCDateTime()))

# google_objects columns a message's outcome writes, with their PostgreSQL types (for
# _update_objects' JSON rows); saved_at is the one expression (coalesce: the first save kept).
_PG_COLUMNS = {
    "messages": "JSON",
    "notified_at": "JSON",
    "updated_at": "TIMESTAMPTZ",
    "checked_at": "TIMESTAMPTZ",
    "has_users": "BOOLEAN",
}


def _update_objects(session: Session, rows: list[dict[str, Any]]) -> None:
    """One statement per set of columns: PostgreSQL, an UPDATE ... FROM json_to_recordset;
    otherwise an executemany (the saved_at expression is the same for all)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    exprs: dict[tuple[str, ...], dict[str, Any]] = {}
    for values in rows:
        plain = {k: v for k, v in values.items() if not hasattr(v, "compile")}
        key = tuple(sorted(values))
        groups.setdefault(key, []).append({f"v_{k}": v for k, v in plain.items()})
        exprs.setdefault(key, {k: v for k, v in values.items() if hasattr(v, "compile")})
    table: Any = GoogleObject.__table__
    for key, params in groups.items():
        pg_ok = set(exprs[key]) <= {"saved_at"} and set(key) - {"card_id", "saved_at"} <= set(_PG_COLUMNS)
        if pg_ok and not db.is_sqlite() and ("saved_at" not in key or "checked_at" in key):
            _pg_update_objects(session, key, params)
            continue
        sets: dict[str, Any] = {k: bindparam(f"v_{k}") for k in key if k not in exprs[key] and k != "card_id"}
        stmt = update(table).where(table.c.card_id == bindparam("v_card_id")).values(**sets, **exprs[key])
        session.connection().execute(stmt, params)


def _pg_update_objects(session: Session, key: tuple[str, ...], params: list[dict[str, Any]]) -> None:
    """UPDATE google_objects ... FROM json_to_recordset(:rows): one statement and ONE bound
    JSON document (orjson) for a chunk's objects (arrays of text would be escaped per
    element by the driver, in Python)."""
    cols = [k for k in key if k not in ("card_id", "saved_at")]
    sets = [f"{c} = u.{c}" for c in cols]
    if "saved_at" in key:  # save_columns: the first time a guest's save was seen (checked_at is now)
        sets.append("saved_at = COALESCE(g.saved_at, u.checked_at)")
    shape = ", ".join(["card_id BIGINT", *(f"{c} {_PG_COLUMNS[c]}" for c in cols)])
    doc = orjson.dumps([{k: p[f"v_{k}"] for k in ("card_id", *cols)} for p in params]).decode()
    sql = (
        f"UPDATE google_objects AS g SET {', '.join(sets)} "
        f"FROM json_to_recordset(CAST(:rows AS JSON)) AS u({shape}) WHERE g.card_id = u.card_id"
    )
    session.execute(text(sql), {"rows": doc})


def send_batch(
    merchant_id: int | None,
    header: str,
    body: str,
    batch: str,
    items: Sequence[tuple[int, str]],
    texts: Mapping[str, tuple[str, str]] | None = None,
) -> BatchResult:
    """addMessage to every (card, message id) of a chunk not yet done; see the module doc.
    `texts`: message id -> (header, body) of the cards whose text is not header/body."""
    result = BatchResult()
    if not items:
        return result
    texts = texts or {}
    by_message = {m: c for c, m in items}
    locked = not db.is_sqlite()
    fallback: list[tuple[int, str]] = []
    with db.transaction() if locked else db.read() as session:
        done = set(
            session.scalars(
                select(GoogleMessageSend.message_id).where(
                    db.in_ids(GoogleMessageSend.message_id, list(by_message))
                )
            )
        )
        todo = [(c, m) for c, m in items if m not in done]
        result.done += len(items) - len(todo)
        if not todo:
            return result
        stmt = (
            select(
                GoogleObject.card_id,
                GoogleObject.object_id,
                GoogleObject.inserted,
                GoogleObject.messages,
                GoogleObject.notified_at,
                Card.serial,
                Card.merchant_id,
            )
            .join(Card, Card.id == GoogleObject.card_id)
            .where(db.in_ids(GoogleObject.card_id, [c for c, _ in todo]))
            .order_by(GoogleObject.card_id)
        )
        if locked:
            stmt = stmt.with_for_update(of=GoogleObject, skip_locked=True)
        found = {r.card_id: r for r in session.execute(stmt)}
        missing = [c for c, _ in todo if c not in found]
        busy = set()
        if locked and missing:  # held by another worker (a patch of the card): later
            busy = set(session.scalars(select(GoogleObject.card_id).where(GoogleObject.card_id.in_(missing))))
        issuer = issuer_for(session, merchant_id) if merchant_id is not None else None
        now = db.utcnow()
        outcomes: list[dict[str, Any]] = []
        jobs: list[Job] = []
        for card_id, message_id in todo:
            row = found.get(card_id)
            if card_id in busy:
                result.retry.append((card_id, message_id))
                result.errors.append("another worker is syncing this card")
            elif row is None or issuer is None or not issuer.syncs:
                outcomes.append({"message_id": message_id, "card_id": card_id, "status": "skipped"})
            elif row.merchant_id != merchant_id:
                outcomes.append(
                    {
                        "message_id": message_id,
                        "card_id": card_id,
                        "status": "failed",
                        "error": "card not found",
                    }
                )
            elif any(m.get("id") == message_id for m in row.messages or []):
                outcomes.append(
                    {"message_id": message_id, "card_id": card_id, "status": "sent"}
                )  # added before
            elif not row.inserted or row.object_id != _object_id(issuer, row.serial):
                fallback.append((card_id, message_id))
            else:
                notify = len(_recent(row.notified_at, now)) < NOTIFY_PER_DAY
                job_header, job_body = texts.get(message_id, (header, body))
                jobs.append(
                    Job(
                        card_id,
                        message_id,
                        row.object_id,
                        list(row.messages or []),
                        list(row.notified_at or []),
                        notify,
                        job_header,
                        job_body,
                    )
                )
        if not locked and jobs:
            _reserve(jobs, now)
        if jobs:
            assert issuer is not None
            access_token(issuer.creds)  # one token for the chunk (a refused key fails it whole)
            _send_all(WalletClient(issuer.creds), jobs)
        with db.transaction() if not locked else _same(session) as write:
            _record(write, jobs, outcomes, result, now, locked, fallback)
            _record_sends(write, merchant_id, batch, outcomes)
    for card_id, message_id in fallback:
        one_header, one_body = texts.get(message_id, (header, body))
        _one(merchant_id, one_header, one_body, batch, card_id, message_id, result)
    return result


class _same:
    """The reading session is the writing one (PostgreSQL: the rows stay locked)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def __enter__(self) -> Session:
        return self.session

    def __exit__(self, *exc: object) -> None:
        return None


def _object_id(issuer: Issuer, serial: str) -> str:
    return objects.object_id(issuer.issuer_id, id_prefix(), serial)


def _reserve(jobs: list[Job], now: dt.datetime) -> None:
    """SQLite: take the cards' notification slots in one short write transaction, so two
    sends at once cannot both see 2 and both notify."""
    with db.transaction() as write:
        current: dict[int, Any] = dict(
            write.execute(
                select(GoogleObject.card_id, GoogleObject.notified_at).where(
                    GoogleObject.card_id.in_([j.card_id for j in jobs])
                )
            ).all()
        )
        rows = []
        for job in jobs:
            recent = _recent(current.get(job.card_id), now)
            job.notify = len(recent) < NOTIFY_PER_DAY
            if job.notify:
                rows.append({"card_id": job.card_id, "notified_at": [*recent, now.isoformat()]})
        _update_objects(write, rows)


def _record(
    write: Session,
    jobs: list[Job],
    outcomes: list[dict[str, Any]],
    result: BatchResult,
    now: dt.datetime,
    locked: bool,
    fallback: list[tuple[int, str]],
) -> None:
    rows: list[dict[str, Any]] = []
    current: dict[int, tuple[list[Any], list[Any]]] = {}
    if not locked and jobs:  # SQLite: another send may have changed them since the read
        current = {
            r.card_id: (list(r.messages or []), list(r.notified_at or []))
            for r in write.execute(
                select(GoogleObject.card_id, GoogleObject.messages, GoogleObject.notified_at).where(
                    GoogleObject.card_id.in_([j.card_id for j in jobs])
                )
            )
        }
    stamp = now.isoformat()
    for job in jobs:
        values: dict[str, Any] = {"card_id": job.card_id}
        if locked:
            recent = _recent(job.notified_at, now)
            if job.status == "sent" and job.notify:
                values["notified_at"] = [*recent, stamp]
        elif stamp in current.get(job.card_id, ([], []))[1] and not (job.status == "sent" and job.notify):
            values["notified_at"] = [t for t in current[job.card_id][1] if t != stamp]  # give the slot back
        if job.status == "sent":
            base = job.kept
            if not locked:
                dropped = {m.get("id") for m in job.messages} - {m.get("id") for m in job.kept}
                base = [m for m in current.get(job.card_id, ([], []))[0] if m.get("id") not in dropped]
            values.update(messages=[*base, job.message][-MAX_MESSAGES:], updated_at=now)
            values.update(saved_values(job.answer, now))
            outcomes.append({"message_id": job.message_id, "card_id": job.card_id, "status": "sent"})
        elif job.status == "failed":
            outcomes.append(
                {
                    "message_id": job.message_id,
                    "card_id": job.card_id,
                    "status": "failed",
                    "error": job.error[:500],
                }
            )
            result.failed.append(job.error)
        elif job.status == "retry":
            result.retry.append((job.card_id, job.message_id))
            result.errors.append(job.error)
            if job.retry_after is not None:
                result.retry_after = max(result.retry_after or 0.0, job.retry_after)
        elif job.status == "fallback":
            fallback.append((job.card_id, job.message_id))
        if len(values) > 1:
            rows.append(values)
    _update_objects(write, rows)
    result.done += len(outcomes)


def _one(
    merchant_id: int | None,
    header: str,
    body: str,
    batch: str,
    card_id: int,
    message_id: str,
    result: BatchResult,
) -> None:
    """The one-card path (inserts the object first when Google does not have it)."""
    from loyalwallet.outbox.handlers import Retry

    status, error = "sent", None
    try:
        outcome = send_message(card_id, merchant_id, header, body, message_id)
        status = "skipped" if outcome == "skipped" else "sent"
    except GoogleApiError as exc:
        if exc.retryable or exc.status == 401:
            result.retry.append((card_id, message_id))
            result.errors.append(str(exc))
            return
        status, error = "failed", str(exc)[:500]
    except (httpx.HTTPError, Retry) as exc:
        result.retry.append((card_id, message_id))
        result.errors.append(str(exc))
        return
    except DomainError as exc:
        status, error = "failed", exc.detail[:500]
    if error:
        result.failed.append(error)
    with db.transaction() as write:
        _record_sends(
            write,
            merchant_id,
            batch,
            [{"message_id": message_id, "card_id": card_id, "status": status, "error": error}],
        )
    result.done += 1


def batch_counts(session: Session, merchant_id: int, batch: str) -> dict[str, int]:
    """The cards of a batch ("campaign-12") by outcome: sent, failed (refused for good, or
    in a row that went dead), pending (in a row still queued, not recorded yet)."""
    sends = dict(
        session.execute(
            select(GoogleMessageSend.status, func.count())
            .where(GoogleMessageSend.batch == batch)
            .group_by(GoogleMessageSend.status)
        ).all()
    )
    open_rows = session.execute(
        select(OutboxMessage.status, OutboxMessage.payload).where(
            OutboxMessage.merchant_id == merchant_id,
            OutboxMessage.topic == TOPIC,
            OutboxMessage.status.in_(("pending", "dead")),
            OutboxMessage.payload["batch"].as_string() == batch,
        )
    ).all()
    waiting: dict[str, set[str]] = {"pending": set(), "dead": set()}
    for status, payload in open_rows:
        waiting[status].update(str(item[1]) for item in payload.get("cards") or [])
    if waiting["pending"] or waiting["dead"]:
        recorded = set(
            session.scalars(
                select(GoogleMessageSend.message_id).where(
                    GoogleMessageSend.message_id.in_(list(waiting["pending"] | waiting["dead"]))
                )
            )
        )
        waiting = {k: v - recorded for k, v in waiting.items()}
    waiting["dead"] -= waiting["pending"]  # queued again after a dead row: pending
    return {
        "sent": int(sends.get("sent", 0)),
        "failed": int(sends.get("failed", 0)) + len(waiting["dead"]),
        "pending": len(waiting["pending"]),
    }


def purge_sends(cutoff: dt.datetime, keep: Sequence[str], batch: int = 1000, max_batches: int = 50) -> int:
    """Delete outcomes recorded before `cutoff`, except those of the batches in `keep`
    (campaigns.retention decides which: the open campaigns'); small batches, each its own
    transaction, found through the created_at index. Returns how many."""
    total = 0
    for _ in range(max_batches):
        with db.transaction() as session:
            pick = (
                select(GoogleMessageSend.message_id)
                .where(GoogleMessageSend.created_at < cutoff, GoogleMessageSend.batch.not_in(list(keep)))
                .order_by(GoogleMessageSend.created_at)
                .limit(batch)
            )
            if not db.is_sqlite():
                pick = pick.with_for_update(skip_locked=True)
            ids = list(session.scalars(pick))
            if ids:
                session.execute(delete(GoogleMessageSend).where(GoogleMessageSend.message_id.in_(ids)))
        total += len(ids)
        if len(ids) < batch:
            break
    return total
