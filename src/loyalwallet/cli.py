"""`loyalwallet ...`: demo, serve, worker, migrate, merchant create, check-ledger."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from loyalwallet import db
from loyalwallet.config import configure, load_settings
from loyalwallet.wallet.apple.cli import app as apple_app
from loyalwallet.wallet.google.cli import app as google_app

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Self-hosted loyalty cards for Apple Wallet, Google Wallet and the web.",
)
merchant_app = typer.Typer(no_args_is_help=True, help="Merchants.")
app.add_typer(merchant_app, name="merchant")
app.add_typer(google_app, name="google")
app.add_typer(apple_app, name="apple")
from loyalwallet.imports.cli import app as import_app  # noqa: E402

app.add_typer(import_app, name="import")
from loyalwallet.search.cli import app as search_app  # noqa: E402

app.add_typer(search_app, name="search")
console = Console(stderr=True)


def _setup(data_dir: Path | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # one line per plugin: noise
    settings = configure(load_settings(data_dir))
    db.init_engine(settings)


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    _setup()
    from loyalwallet.config import get_settings
    from loyalwallet.migrations import migrate as run

    run(get_settings().database_url)
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
    if workers > 1:
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
    _setup()
    from loyalwallet.config import get_settings
    from loyalwallet.migrations import migrate as run

    run(get_settings().database_url)
    _serve(host, port, workers)


@app.command()
def worker() -> None:
    """A separate outbox worker process (production)."""
    _setup()
    from loyalwallet.outbox.worker import Worker

    w = Worker()
    try:
        w.run()
    except KeyboardInterrupt:
        w.stop()


@merchant_app.command("create")
def merchant_create(
    name: str = typer.Option(..., "--name", help="The merchant's name."),
    currency: str = typer.Option("RUB", help="ISO 4217 currency."),
    timezone: str = typer.Option("Europe/Moscow", help="IANA time zone for 'today', birthdays and reports."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    owner_login: str | None = typer.Option(
        None,
        "--owner-login",
        help="Also create the owner's login for /admin (a password is generated and shown once).",
    ),
) -> None:
    """Create a merchant and an owner API key (and, with --owner-login, the owner's admin login)."""
    _setup()
    import secrets

    from loyalwallet.config import get_settings
    from loyalwallet.errors import DomainError
    from loyalwallet.migrations import migrate as run

    run(get_settings().database_url)  # a fresh installation needs no separate `migrate`
    from loyalwallet.merchants.service import create_api_key, create_merchant, create_staff

    password = secrets.token_urlsafe(12) if owner_login else None
    try:
        with db.transaction() as session:
            merchant = create_merchant(session, name, currency, timezone)
            _, key = create_api_key(session, merchant.id, "Owner key (CLI)", "owner")
            if owner_login and password:
                owner_login = create_staff(
                    session, merchant.id, owner_login, password, "owner", "Owner"
                ).login
            merchant_id = merchant.id
    except DomainError as exc:
        console.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(2) from None
    out: dict[str, object] = {"merchant_id": merchant_id, "api_key": key}
    if owner_login:
        out |= {"owner_login": owner_login, "owner_password": password}
    if as_json:
        print(json.dumps(out))
    else:
        console.print(f"merchant {merchant_id} created; owner API key (shown once): {key}")
        if owner_login:
            console.print(f"owner login for /admin: {owner_login}  password (shown once): {password}")


@app.command("check-ledger")
def check_ledger() -> None:
    """Exit 0 when every card's cached balance and stamps equal its ledger entries."""
    _setup()
    from loyalwallet.cards.service import check_ledger as check

    with db.read() as session:
        bad = check(session)
    if bad:
        for item in bad:
            print(
                f"card {item['code']} (id {item['card_id']}, merchant {item['merchant_id']}): {'; '.join(item['problems'])}"
            )
        console.print(f"[red]{len(bad)} card(s) disagree with their ledger[/red]")
        raise typer.Exit(1)
    console.print("[green]ledger consistent: every card equals the sum of its entries[/green]")


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
    _setup(data_dir)
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
    app()


if __name__ == "__main__":
    main()
