"""`loyalwallet ...`: demo, serve, worker, migrate, check-ledger; the parts' sub-commands are listed in wiring.CLI_APPS."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from loyalwallet import db, runtime, wiring

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Self-hosted loyalty cards for Apple Wallet, Google Wallet and the web.",
)
for _name, _sub_app in wiring.CLI_APPS:
    app.add_typer(_sub_app, name=_name)
console = Console(stderr=True)


@app.command()
def migrate(
    plan: bool = typer.Option(
        False,
        "--plan",
        help="Only list the migrations still to run and whether old servers may keep serving.",
    ),
) -> None:
    """Bring the database schema up to date (safe to run while servers serve: see docs/upgrades.md)."""
    runtime.start()
    from loyalwallet.config import get_settings
    from loyalwallet.migrations import migrate as run
    from loyalwallet.migrations import schema_status

    url = get_settings().database_url
    with db.get_engine().connect() as conn:
        status = schema_status(conn, url)
    for p in status.pending:
        how = {True: "online-safe", False: "NOT online-safe: stop old servers first", None: "not declared"}
        console.print(f"  {p.revision}: {p.doc.splitlines()[0] if p.doc else ''} [{how[p.online_safe]}]")
    if plan:
        console.print(f"{len(status.pending)} migration(s) to run")
        return
    run(url)
    console.print("[green]database is up to date[/green]")


def _serve(host: str, port: int, workers: int = 1) -> None:
    import uvicorn

    # Behind a reverse proxy the guest's address (OTP, login and referral limits per IP)
    # comes from X-Forwarded-For, trusted only from these proxies.
    options: dict[str, Any] = {
        "log_level": "info",
        "access_log": False,
        "proxy_headers": True,
        "forwarded_allow_ips": os.environ.get("LOYALWALLET_TRUSTED_PROXIES", "127.0.0.1"),
    }
    from loyalwallet.ops.logs import json_logs

    if json_logs():
        options["log_config"] = None  # uvicorn's loggers go to our JSON handler
    if workers > 1:
        # Each server process counts its requests in its own files here; /metrics adds
        # them up. A fresh directory per start: old counts would be added in too.
        import shutil

        from loyalwallet.config import get_settings

        multiproc = get_settings().data_dir / "metrics" / f"serve-{os.getpid()}"
        for old in multiproc.parent.glob("serve-*") if multiproc.parent.exists() else ():
            if not Path(f"/proc/{old.name.removeprefix('serve-')}").exists():  # its server is gone
                shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(multiproc, ignore_errors=True)
        multiproc.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc)
        # A process importing the app on a busy host can take longer than uvicorn's 5 s
        # health check; it was killed and restarted forever (seen on a loaded 2-core box).
        options["timeout_worker_healthcheck"] = int(
            os.environ.get("LOYALWALLET_WORKER_HEALTHCHECK_SECONDS", "60")
        )
        uvicorn.run(
            "loyalwallet.api.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            **options,
        )
    else:
        from loyalwallet.api.app import create_app

        uvicorn.run(create_app(), host=host, port=port, **options)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port."),
    workers: int = typer.Option(
        1, help="Server processes (each runs an embedded outbox worker unless LOYALWALLET_RUN_WORKER=0)."
    ),
) -> None:
    """The server for real use, configured from the environment."""
    runtime.start()
    from loyalwallet.config import get_settings
    from loyalwallet.migrations import migrate as run

    run(get_settings().database_url)
    _serve(host, port, workers)


@app.command()
def worker() -> None:
    """A separate outbox worker process (production)."""
    runtime.start()
    from loyalwallet.outbox.worker import Worker

    w = Worker()
    # systemd and docker stop with SIGTERM: finish the deliveries in hand, then exit 0.
    signal.signal(signal.SIGTERM, lambda *_: w.stop())
    try:
        w.run()
    except KeyboardInterrupt:
        w.stop()
    console.print("outbox worker stopped")


@app.command("check-ledger")
def check_ledger() -> None:
    """Exit 0 when every card's cached balance and stamps equal its ledger entries."""
    runtime.start()
    from loyalwallet.cards.sweeps import check_ledger as check
    from loyalwallet.certificates.ledger import check_ledger as check_certificates
    from loyalwallet.subscriptions.ledger import check_ledger as check_subscriptions

    with db.read() as session:
        bad = check(session)
        bad_certificates = check_certificates(session)
        bad_subscriptions = check_subscriptions(session)
    for item in bad:
        print(
            f"card {item['code']} (id {item['card_id']}, merchant {item['merchant_id']}): {'; '.join(item['problems'])}"
        )
    for item in bad_certificates:
        print(
            f"gift certificate {item['code']} (id {item['certificate_id']}, merchant {item['merchant_id']}): "
            f"{'; '.join(item['problems'])}"
        )
    for item in bad_subscriptions:
        print(
            f"subscription {item['subscription_id']} (merchant {item['merchant_id']}): {'; '.join(item['problems'])}"
        )
    if bad or bad_certificates or bad_subscriptions:
        console.print(
            f"[red]{len(bad)} card(s), {len(bad_certificates)} gift certificate(s) and "
            f"{len(bad_subscriptions)} subscription(s) disagree with their ledger[/red]"
        )
        raise typer.Exit(1)
    console.print("[green]ledger consistent: every card equals the sum of its entries[/green]")


@app.command()
def doctor(
    as_json: bool = typer.Option(False, "--json", help="One JSON object instead of the table."),
) -> None:
    """Check the installation on one screen; exit 1 when a blocker is found."""
    runtime.start()
    from loyalwallet.ops import doctor as checks

    findings = checks.run()
    if as_json:
        import json

        print(
            json.dumps({"findings": [f.__dict__ for f in findings], "blocker": checks.has_blocker(findings)})
        )
    else:
        from rich.table import Table

        marks = {"ok": "[green]ok[/green]", "skip": "[dim]–[/dim]", "warn": "[yellow]warn[/yellow]"}
        table = Table(show_header=False, box=None, pad_edge=False)
        for f in findings:
            detail = f.detail + (f"\n[cyan]→ {f.fix}[/cyan]" if f.fix else "")
            table.add_row(marks.get(f.level, "[red bold]BLOCKER[/red bold]"), f.title, detail)
        Console(width=160).print(table)
        blockers = sum(f.level == "blocker" for f in findings)
        warns = sum(f.level == "warn" for f in findings)
        console.print(
            f"[red]{blockers} blocker(s)[/red], {warns} warning(s)"
            if blockers
            else f"[green]no blocker[/green], {warns} warning(s)"
        )
    if checks.has_blocker(findings):
        raise typer.Exit(1)


def _passphrase(confirm: bool) -> str:
    """LOYALWALLET_BACKUP_PASSPHRASE, else a line of standard input, else asked on the terminal."""
    value = os.environ.get("LOYALWALLET_BACKUP_PASSPHRASE")
    if value:
        return value
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    value = getpass.getpass("Backup passphrase: ")
    if confirm and getpass.getpass("Again: ") != value:
        console.print("[red]the passphrases differ[/red]")
        raise typer.Exit(2)
    return value


@app.command()
def backup(
    file: Path = typer.Argument(..., help="The archive to write; a directory: a new timestamped file in it."),
    keep_days: int = typer.Option(
        0,
        "--keep-days",
        help="Then delete backups older than this many days in the same directory (0: keep all).",
    ),
) -> None:
    """One encrypted archive of the database and the secrets (passphrase: LOYALWALLET_BACKUP_PASSPHRASE)."""
    from loyalwallet.ops import backup as ops

    passphrase = _passphrase(confirm=True)
    try:
        result = ops.backup(file, passphrase)
    except ops.BackupError as exc:
        console.print(f"[red]backup failed: {exc}[/red]")
        raise typer.Exit(1) from None
    console.print(
        f"[green]backup written[/green]: {result.path} ({result.size / 2**20:.1f} MiB, {result.database}, "
        f"{result.seconds:.1f} s). Keep the passphrase apart from the file: without it nothing can be restored."
    )
    if keep_days > 0:
        for gone in ops.prune(result.path.parent, keep_days):
            console.print(f"deleted old backup {gone.name}")


@app.command()
def restore(
    file: Path = typer.Argument(..., help="An archive written by `loyalwallet backup`."),
) -> None:
    """Bring an empty installation (new database, data dir) back from a backup."""
    from loyalwallet.ops import backup as ops

    passphrase = _passphrase(confirm=False)
    try:
        result = ops.restore(file, passphrase)
    except ops.BackupError as exc:
        console.print(f"[red]restore failed: {exc}[/red] (nothing was written to the database)")
        raise typer.Exit(1) from None
    console.print(
        f"[green]restored[/green] the {result.database} database and the secrets of {result.created_at} "
        f"in {result.seconds:.1f} s. Next: loyalwallet migrate, loyalwallet check-ledger, loyalwallet doctor."
    )
    if any(os.environ.get(f"LOYALWALLET_{n.upper()}") for n in ops.SECRET_NAMES):
        console.print(
            "[yellow]LOYALWALLET_PII_KEY / INDEX_KEY / SESSION_KEY are set in the environment and win over "
            "the restored key files: unset them or set them to the restored values.[/yellow]"
        )


@app.command()
def demo(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port."),
    data_dir: Path = typer.Option(
        Path(".loyalwallet"), "--data-dir", help="Where the SQLite database and secrets live."
    ),
) -> None:
    """The embedded default: SQLite, migrate, seed a demo coffee shop, print URLs, serve."""
    os.environ.setdefault(
        "LOYALWALLET_BASE_URL", f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    )
    os.environ["LOYALWALLET_DATA_DIR"] = str(data_dir)
    # No SMS provider in the demo: the code page shows what the console "sent".
    os.environ.setdefault("LOYALWALLET_SMS_CONSOLE_SHOW_CODE", "1")
    runtime.start(data_dir)
    from loyalwallet.config import get_settings
    from loyalwallet.demo import seed
    from loyalwallet.migrations import migrate as run

    settings = get_settings()
    run(settings.database_url)
    info = seed(settings.data_dir)
    from loyalwallet.wallet.apple.credentials import ensure_development_certificate

    with db.transaction() as session:
        apple_dev = ensure_development_certificate(session).kind == "development"
    base = settings.base_url
    lines = [
        f"[bold]Admin[/bold]      {base}/admin   login [cyan]{info['owner_login']}[/cyan] password [cyan]{info['owner_password']}[/cyan]",
        f"[bold]Cashier[/bold]    {base}/cashier login [cyan]{info['cashier_login']}[/cyan] password [cyan]{info['cashier_password']}[/cyan]",
        f"[bold]Join page[/bold]  {base}/join/{info['bonus_program_id']}  (stamps: {base}/join/{info['stamp_program_id']})",
        f"[bold]Counter QR[/bold] {info.get('counter_qr_url', '-')}  (installs a card at once, the form comes later)",
        f"[bold]API docs[/bold]   {base}/docs   (OpenAPI: {base}/openapi.json)",
        f"[bold]Cashier API key[/bold] [cyan]{info['cashier_api_key']}[/cyan]",
        f"[bold]Owner API key[/bold]   [cyan]{info['owner_api_key']}[/cyan]",
        *(
            [
                f"[bold]Google Wallet[/bold] [yellow]development key[/yellow] (issuer {info['google_dev_issuer']}): "
                "save links are signed but Google refuses them; real saves need a Google Wallet issuer "
                "account and its key: loyalwallet google import-key KEY.json --issuer-id ID"
            ]
            if info.get("google_dev_issuer")
            else []
        ),
        f"Data: {settings.data_dir} (SQLite). Stop with Ctrl-C.",
        (
            "[yellow]Apple Wallet: passes are signed with a self-signed DEVELOPMENT certificate. Real iPhones "
            "refuse them: import your Apple Pass Type ID certificate with `loyalwallet apple import-cert "
            "--p12 FILE --password ...` (and serve over HTTPS for live updates).[/yellow]"
            if apple_dev
            else "Apple Wallet: passes are signed with your Apple certificate."
        ),
        "",
        f"Try: curl -H 'Authorization: Bearer {info['cashier_api_key']}' '{base}/api/v1/cards?phone=89160000001'",
    ]
    out = Console(width=200, soft_wrap=True)
    out.rule("loyalwallet demo: Кофейня «Зерно»")
    for line in lines:
        out.print(line, soft_wrap=True)
    out.rule()
    sys.stdout.flush()
    _serve(host, port)


def main() -> None:
    from sqlalchemy.exc import OperationalError, ProgrammingError

    wiring.install()
    try:
        app()
    except (OperationalError, ProgrammingError) as exc:
        # An unreachable database or one without tables: one line that says what to do,
        # not a traceback (the commands that write the schema, migrate and merchant
        # create, reach here only when the server is unreachable).
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        console.print(f"[red]database error: {reason}[/red]")
        console.print("Is LOYALWALLET_DATABASE_URL right, and has `loyalwallet migrate` been run?")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
