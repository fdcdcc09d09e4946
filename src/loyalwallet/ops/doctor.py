"""The installation's checks (`loyalwallet doctor`, and the admin's setup checklist):
each says ok, warn, blocker or skip (not configured, not needed), with one line of
detail and what to do. Services only: no printing, no web.

Add a check by writing a function `(Context) -> list[Finding]` and listing it in CHECKS
(order = the order on screen). A check must not raise: an exception is reported as a
blocker of that check. Network calls are bounded by TIMEOUT.

The setup checklist (ops/checklist.py) calls some checks with a Context scoped to one
merchant (`merchant_id`: that merchant's credentials, else the installation's) and
without network calls (`network=False`: what is stored, not whether a provider accepts
it), and reads `Finding.reason` (a stable word) to say in the owner's language what is
missing.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from loyalwallet import db
from loyalwallet.config import Settings, env, get_settings

TIMEOUT = float(env("DOCTOR_TIMEOUT", "5") or 5)
LEVELS = ("ok", "skip", "warn", "blocker")


@dataclass(frozen=True)
class Finding:
    key: str  # stable: "database", "base_url", "apple_certificate", ...
    title: str
    level: str  # one of LEVELS
    detail: str
    fix: str = ""
    # A stable word for what is wrong ("missing", "development", "expiring", ...), and its
    # figures (e.g. {"days": 12}): pages translate these instead of `detail`.
    reason: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    settings: Settings
    now: dt.datetime = field(default_factory=db.utcnow)
    database_ok: bool = False
    # One merchant's view (its own credentials, else the installation's); None: all.
    merchant_id: int | None = None
    # False: no outside calls (APNs, Google, SMS.ru, Telegram); report what is stored.
    network: bool = True


Check = Callable[[Context], list[Finding]]


# --- the checks -----------------------------------------------------------------------------


def database(ctx: Context) -> list[Finding]:
    from loyalwallet.ops.health import readiness

    r = readiness()
    ctx.database_ok = r.ready  # the other checks read tables: only on a migrated database
    if r.ready:
        return [Finding("database", "Database", "ok", f"{_db_name(ctx.settings)}: {r.detail}")]
    fix = "loyalwallet migrate" if r.pending else "check LOYALWALLET_DATABASE_URL and that PostgreSQL runs"
    return [Finding("database", "Database", "blocker", f"{r.status}: {r.detail}", fix)]


def base_url(ctx: Context) -> list[Finding]:
    url = ctx.settings.base_url
    local = any(h in url for h in ("//127.0.0.1", "//localhost", "//[::1]"))
    out: list[Finding] = []
    if not url.startswith("https://"):
        out.append(
            Finding(
                "base_url_https",
                "Base URL is HTTPS",
                "warn" if local else "blocker",
                f"{url} is not HTTPS: iPhones only talk to an HTTPS web service and browsers warn guests",
                "put the server behind Caddy (deploy/Caddyfile) and set LOYALWALLET_BASE_URL=https://...",
            )
        )
    else:
        out.append(Finding("base_url_https", "Base URL is HTTPS", "ok", url))
    try:
        answer = httpx.get(f"{url}/healthz", timeout=TIMEOUT)
        if answer.status_code == 200:
            out.append(Finding("base_url_answers", "Base URL answers", "ok", f"{url}/healthz answered 200"))
        else:
            out.append(
                Finding(
                    "base_url_answers",
                    "Base URL answers",
                    "blocker",
                    f"{url}/healthz answered HTTP {answer.status_code}",
                    "is `loyalwallet serve` running behind the proxy?",
                )
            )
    except httpx.HTTPError as exc:
        out.append(
            Finding(
                "base_url_answers",
                "Base URL answers",
                "blocker",
                f"{url}/healthz: {type(exc).__name__}: {exc}",
                "check DNS, the firewall (80/443), Caddy and `systemctl status loyalwallet`",
            )
        )
    return out


def secrets(ctx: Context) -> list[Finding]:
    folder = ctx.settings.data_dir / "secrets"
    names = ("pii_key", "index_key", "session_key")
    from_env = [n for n in names if env(n.upper())]
    problems: list[str] = []
    uid = os.getuid()
    for name in names:
        if name in from_env:
            continue
        path = folder / f"{name}.key"
        if not path.exists():
            problems.append(f"{path} is missing")
            continue
        st = path.stat()
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            problems.append(f"{path} is readable by others (mode {stat.S_IMODE(st.st_mode):o})")
        if st.st_uid != uid:
            problems.append(f"{path} belongs to uid {st.st_uid}, not this user ({uid})")
    if folder.exists() and stat.S_IMODE(folder.stat().st_mode) & (stat.S_IRWXG | stat.S_IRWXO):
        problems.append(f"{folder} is open to others (mode {stat.S_IMODE(folder.stat().st_mode):o})")
    if problems:
        return [
            Finding(
                "secrets",
                "Secrets",
                "blocker",
                "; ".join(problems),
                f"chmod 700 {folder}; chmod 600 {folder}/*.key; chown the service user",
            )
        ]
    where = "environment" if len(from_env) == len(names) else f"{folder} (mode 600, this user only)"
    return [Finding("secrets", "Secrets", "ok", f"keys present in {where}; back them up with the database")]


def apple_certificate(ctx: Context) -> list[Finding]:
    if not ctx.database_ok:
        return [Finding("apple_certificate", "Apple certificate", "skip", "database not ready")]
    from loyalwallet.wallet.apple.credentials import identity_of, installation_certificate
    from loyalwallet.wallet.apple.models import AppleCertificate

    with db.read() as session:
        rows = list(session.scalars(select(AppleCertificate).where(AppleCertificate.active.is_(True))))
        if ctx.merchant_id is not None:  # the certificates this merchant's passes would use
            own = [r for r in rows if r.merchant_id == ctx.merchant_id]
            rows = own or [r for r in rows if r.merchant_id is None]
        if not rows and installation_certificate(session) is None:
            return [
                Finding(
                    "apple_certificate",
                    "Apple certificate",
                    "warn",
                    "no pass certificate: Apple Wallet passes cannot be issued",
                    "loyalwallet apple import-cert --p12 FILE --password ...",
                    reason="missing",
                )
            ]
        out: list[Finding] = []
        for row in rows:
            scope = f"merchant {row.merchant_id}" if row.merchant_id else "installation"
            days = (row.not_after - ctx.now).days
            if row.kind == "development":
                out.append(
                    Finding(
                        "apple_certificate",
                        f"Apple certificate ({scope})",
                        "warn",
                        f"{row.pass_type_id}: self-signed development certificate, real iPhones refuse its passes",
                        "loyalwallet apple import-cert --p12 FILE --password ...",
                        reason="development",
                    )
                )
                continue
            chain = identity_of(row).chain
            g4 = any(
                "Worldwide Developer Relations" in c.subject.rfc4514_string()
                and "G4" in c.subject.rfc4514_string()
                for c in chain
            )
            level = "blocker" if days < 0 or not g4 else "warn" if days < 30 else "ok"
            detail = (
                f"{row.pass_type_id} (team {row.team_id}): {days} days left, until {row.not_after:%Y-%m-%d}"
            )
            detail += "; WWDR G4 in the chain" if g4 else "; the WWDR G4 intermediate is NOT in the chain"
            fix = (
                ""
                if level == "ok"
                else "renew at developer.apple.com and import again (--wwdr AppleWWDRCAG4.cer)"
            )
            reason = "expired" if days < 0 else "no_wwdr_g4" if not g4 else "expiring" if days < 30 else ""
            out.append(
                Finding(
                    "apple_certificate",
                    f"Apple certificate ({scope})",
                    level,
                    detail,
                    fix,
                    reason=reason,
                    data={"days": days, "pass_type_id": row.pass_type_id, "team_id": row.team_id},
                )
            )
        return out


def apns(ctx: Context) -> list[Finding]:
    if not ctx.database_ok:
        return [Finding("apns", "APNs", "skip", "database not ready")]
    from loyalwallet.wallet.apple import apns as client
    from loyalwallet.wallet.apple.credentials import installation_certificate, push_route

    with db.read() as session:
        cert = installation_certificate(session)
        route = push_route(session, cert.pass_type_id) if cert is not None else None
    if cert is None or route is None:
        return [Finding("apns", "APNs", "skip", "no pass certificate")]
    if route.pusher is None:
        return [Finding("apns", "APNs", "skip", route.reason)]
    # A push to a token no device holds: Apple checks our auth first (403 when wrong), then
    # answers 400 BadDeviceToken (or 410). Nothing reaches any phone.
    result = route.pusher.push("0" * 64, route.topic)
    if result.status == 0:
        return [
            Finding(
                "apns",
                "APNs",
                "blocker",
                f"{client.base_url()} unreachable: {result.reason}",
                "allow outgoing HTTPS (443) to api.push.apple.com",
            )
        ]
    if result.status == 403:
        return [
            Finding(
                "apns",
                "APNs",
                "blocker",
                f"{client.base_url()} refused our credentials: {result.reason}",
                "import the APNs key again (loyalwallet apple import-push-key) or the pass certificate",
            )
        ]
    return [
        Finding(
            "apns",
            "APNs",
            "ok",
            f"{client.base_url()} accepted our credentials (test push answered {result.status} {result.reason or ''})".strip(),
        )
    ]


def google(ctx: Context) -> list[Finding]:
    if not ctx.database_ok:
        return [Finding("google", "Google Wallet", "skip", "database not ready")]
    from loyalwallet import crypto
    from loyalwallet.wallet.google import client
    from loyalwallet.wallet.google.issuer import KEY_COLUMN
    from loyalwallet.wallet.google.keys import parse_key_file
    from loyalwallet.wallet.google.models import GoogleIssuer

    with db.read() as session:
        rows = list(session.scalars(select(GoogleIssuer)))
    if ctx.merchant_id is not None:  # the issuer this merchant's cards would use
        own = [r for r in rows if r.merchant_id == ctx.merchant_id]
        rows = own or [r for r in rows if r.merchant_id is None]
    if not rows:
        return [
            Finding(
                "google",
                "Google Wallet",
                "warn",
                "no issuer key: no Add to Google Wallet links",
                "loyalwallet google import-key KEY.json --issuer-id ID",
                reason="missing",
            )
        ]
    out: list[Finding] = []
    for row in rows:
        scope = f"merchant {row.merchant_id}" if row.merchant_id else "installation"
        title = f"Google Wallet ({scope})"
        if row.development and env("GOOGLE_API_URL") is None:
            out.append(
                Finding(
                    "google",
                    title,
                    "warn",
                    f"issuer {row.issuer_id}: development key, Google refuses its save links",
                    "loyalwallet google import-key KEY.json --issuer-id ID",
                    reason="development",
                )
            )
            continue
        if not ctx.network:
            out.append(
                Finding("google", title, "ok", f"issuer {row.issuer_id}: key stored (not tested: no network)")
            )
            continue
        try:
            raw = crypto.open_(row.key_sealed, merchant_id=row.merchant_id or 0, column=KEY_COLUMN)
            key = parse_key_file(raw or "")
            creds = client.Credentials(key.email, key.key_id, key.token_uri, key.private_key)
            client.forget_token(creds)
            client.access_token(creds)  # a JWT signed with the key, accepted by Google's token endpoint
        except Exception as exc:
            out.append(
                Finding(
                    "google",
                    title,
                    "blocker",
                    f"issuer {row.issuer_id}: {type(exc).__name__}: {str(exc)[:200]}",
                    "check the service account key (loyalwallet google import-key) and outgoing HTTPS",
                    reason="refused",
                )
            )
            continue
        out.append(
            Finding("google", title, "ok", f"issuer {row.issuer_id}: the key signs and Google issued a token")
        )
    return out


def sms(ctx: Context) -> list[Finding]:
    from loyalwallet.enrollment.sms import get_provider, provider_name

    name = provider_name()
    if name == "console" and ctx.database_ok:
        from loyalwallet.enrollment.sms.settings import config_for
        from loyalwallet.merchants.models import Merchant

        with db.read() as session:
            query = select(Merchant)
            if ctx.merchant_id is not None:  # one café's view (the dashboard's checklist)
                query = query.where(Merchant.id == ctx.merchant_id)
            merchants = list(session.scalars(query))
        own = [m for m in merchants if config_for(m).provider != "console"]
        if merchants and len(own) == len(merchants):
            return [Finding("sms", "SMS provider", "ok", "every merchant chose its provider on the SMS page")]
    if name == "console":
        return [
            Finding(
                "sms",
                "SMS provider",
                "warn",
                "console: codes are only written to the log, guests get no SMS",
                "the admin's SMS page (/admin/sms), or LOYALWALLET_SMS_PROVIDER=smsru and "
                "LOYALWALLET_SMSRU_API_ID (see deploy/loyalwallet.env.example)",
                reason="console",
            )
        ]
    if not ctx.network:
        return [Finding("sms", "SMS provider", "ok", f"{name} configured (not tested: no network)")]
    try:
        provider = get_provider()
        balance = getattr(provider, "balance", None)
        if balance is None:
            return [Finding("sms", "SMS provider", "ok", f"{name} configured (no balance call)")]
        money = balance()
    except Exception as exc:
        return [
            Finding(
                "sms",
                "SMS provider",
                "blocker",
                f"{name}: {exc}",
                "check LOYALWALLET_SMSRU_API_ID and outgoing HTTPS to sms.ru",
                reason="refused",
            )
        ]
    level = "warn" if money < 100 else "ok"
    return [
        Finding(
            "sms",
            "SMS provider",
            level,
            f"{name} answers, balance {money:.2f}",
            "top up the SMS.ru balance" if level == "warn" else "",
        )
    ]


def telegram(ctx: Context) -> list[Finding]:
    from loyalwallet.fraud import telegram as client

    token = env("TELEGRAM_BOT_TOKEN")
    if not token:
        return [
            Finding(
                "telegram", "Telegram bot", "skip", "no installation bot (LOYALWALLET_TELEGRAM_BOT_TOKEN)"
            )
        ]
    try:
        me = client.get_me(token)
    except Exception as exc:
        return [
            Finding(
                "telegram",
                "Telegram bot",
                "blocker",
                f"getMe failed: {exc}",
                "check the token from @BotFather and outgoing HTTPS to api.telegram.org",
            )
        ]
    return [Finding("telegram", "Telegram bot", "ok", f"@{me.get('username', '?')} answers")]


# Heartbeats older than this: the worker is gone. Oldest pending row older than this: behind.
WORKER_SILENT = dt.timedelta(seconds=60)
OUTBOX_BEHIND = dt.timedelta(minutes=10)


def worker(ctx: Context) -> list[Finding]:
    if not ctx.database_ok:
        return [Finding("worker", "Outbox worker", "skip", "database not ready")]
    from loyalwallet.outbox.models import OutboxMessage, WorkerHeartbeat

    with db.read() as session:
        last = session.scalar(select(func.max(WorkerHeartbeat.beat_at)))
        alive = session.scalar(select(func.count()).where(WorkerHeartbeat.beat_at >= ctx.now - WORKER_SILENT))
        oldest = session.scalar(
            select(func.min(OutboxMessage.created_at)).where(OutboxMessage.status == "pending")
        )
        pending = session.scalar(select(func.count()).where(OutboxMessage.status == "pending")) or 0
        dead = session.scalar(select(func.count()).where(OutboxMessage.status == "dead")) or 0
    out: list[Finding] = []
    if not alive:
        seen = f"last heard {_ago(ctx.now - _utc(last))} ago" if last else "never heard from"
        out.append(
            Finding(
                "worker",
                "Outbox worker",
                "blocker",
                f"no worker alive ({seen}): passes, SMS codes and pushes are not delivered",
                "systemctl start loyalwallet-worker (or serve with LOYALWALLET_RUN_WORKER=1)",
            )
        )
    else:
        out.append(Finding("worker", "Outbox worker", "ok", f"{alive} worker loop(s) alive"))
    age = ctx.now - _utc(oldest) if oldest else None
    level = "ok" if age is None or age < OUTBOX_BEHIND else "warn"
    detail = f"{pending} pending" + (f", oldest {_ago(age)} old" if age else "") + f"; {dead} dead"
    out.append(
        Finding(
            "outbox",
            "Outbox",
            level,
            detail,
            "" if level == "ok" else "the worker is behind or a provider is down: see /admin/deliveries",
        )
    )
    return out


def connections(ctx: Context) -> list[Finding]:
    """Every process taking its whole pool must fit in PostgreSQL's max_connections."""
    if not ctx.database_ok:
        return []
    problem = db.db_budget_problem(db.get_engine())
    if problem is None:
        keep, overflow = db.pool_budget()
        return [Finding("connections", "Database connections", "ok", f"{keep}+{overflow} per process fit")]
    return [Finding("connections", "Database connections", "warn", problem, "see docs/scaling.md")]


def autovacuum(ctx: Context) -> list[Finding]:
    """PostgreSQL's autovacuum off: tables that are written all day (cards, purchases,
    the ledger) keep their dead rows and grow; retention vacuums only the queue tables."""
    if not ctx.database_ok or ctx.settings.is_sqlite:
        return []
    with db.get_engine().connect() as conn:
        on = conn.exec_driver_sql("SHOW autovacuum").scalar() == "on"
    if on:
        return [Finding("autovacuum", "Autovacuum", "ok", "on")]
    return [
        Finding(
            "autovacuum",
            "Autovacuum",
            "warn",
            "off: updated and deleted rows are not reclaimed, tables and indexes grow",
            "set autovacuum = on in postgresql.conf (or ALTER SYSTEM) and reload",
        )
    ]


def disk(ctx: Context) -> list[Finding]:
    usage = shutil.disk_usage(ctx.settings.data_dir)
    free = usage.free / usage.total if usage.total else 1.0
    gib = usage.free / 2**30
    level = "blocker" if gib < 0.5 or free < 0.02 else "warn" if gib < 2 or free < 0.10 else "ok"
    return [
        Finding(
            "disk",
            "Disk space",
            level,
            f"{gib:.1f} GiB free ({free:.0%}) on {ctx.settings.data_dir}",
            "" if level == "ok" else "free some space: old backups, logs",
        )
    ]


def backup_dir(settings: Settings) -> Path:
    return Path(env("BACKUP_DIR") or settings.data_dir / "backups")


BACKUP_STALE = dt.timedelta(hours=26)


def backups(ctx: Context) -> list[Finding]:
    folder = backup_dir(ctx.settings)
    files = sorted(folder.glob("*.lwbackup"), key=lambda p: p.stat().st_mtime) if folder.exists() else []
    if not files:
        return [
            Finding(
                "backups",
                "Backups",
                "warn",
                f"no backup in {folder}",
                "systemctl enable --now loyalwallet-backup.timer (deploy/), or loyalwallet backup FILE",
            )
        ]
    newest = files[-1]
    age = ctx.now - dt.datetime.fromtimestamp(newest.stat().st_mtime, dt.UTC)
    level = "ok" if age < BACKUP_STALE else "warn"
    return [
        Finding(
            "backups",
            "Backups",
            level,
            f"{len(files)} in {folder}, newest {newest.name}, {_ago(age)} old",
            "" if level == "ok" else "is loyalwallet-backup.timer running? journalctl -u loyalwallet-backup",
        )
    ]


# The checks, in the order shown. Later issues add theirs here (e.g. the database's
# connection budget).
CHECKS: list[Check] = [
    database,
    base_url,
    secrets,
    apple_certificate,
    apns,
    google,
    sms,
    telegram,
    worker,
    connections,
    autovacuum,
    disk,
    backups,
]


def run(checks: list[Check] | None = None, ctx: Context | None = None) -> list[Finding]:
    ctx = ctx or Context(get_settings())
    out: list[Finding] = []
    for check in checks if checks is not None else CHECKS:
        try:
            out.extend(check(ctx))
        except Exception as exc:
            name = getattr(check, "__name__", "check")
            out.append(Finding(name, name, "blocker", f"the check failed: {type(exc).__name__}: {exc}"))
    return out


def has_blocker(findings: list[Finding]) -> bool:
    return any(f.level == "blocker" for f in findings)


def _db_name(settings: Settings) -> str:
    url = settings.database_url
    return (
        "SQLite " + url.split("///", 1)[-1] if settings.is_sqlite else "PostgreSQL " + url.rsplit("@", 1)[-1]
    )


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _ago(delta: dt.timedelta) -> str:
    s = int(delta.total_seconds())
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    if s < 172800:
        return f"{s // 3600} h"
    return f"{s // 86400} days"
