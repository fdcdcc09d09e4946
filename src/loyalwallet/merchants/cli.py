"""`loyalwallet merchant create`: a new merchant with its owner API key (and admin login)."""

from __future__ import annotations

import json
import secrets

import typer
from rich.console import Console

from loyalwallet import db, runtime
from loyalwallet.config import get_settings
from loyalwallet.errors import DomainError
from loyalwallet.merchants.service import create_api_key, create_merchant, create_staff

app = typer.Typer(no_args_is_help=True, help="Merchants.")
console = Console(stderr=True)


@app.command("create")
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
    runtime.start()
    from loyalwallet.migrations import migrate  # Alembic: only this command needs it

    migrate(get_settings().database_url)  # a fresh installation needs no separate `migrate`
    password = secrets.token_urlsafe(12) if owner_login else None
    try:
        with db.transaction() as session:
            merchant = create_merchant(session, name, currency, timezone)
            _, key = create_api_key(session, merchant.id, "Owner key (CLI)", "owner")
            if owner_login and password:
                owner_login = create_staff(session, merchant.id, owner_login, password, "owner").login
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
