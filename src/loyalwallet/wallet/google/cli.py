"""`loyalwallet google ...`: import the issuer key, show the status, remove the issuer."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from loyalwallet import runtime

app = typer.Typer(no_args_is_help=True, help="Google Wallet: issuer key and status.")
console = Console(stderr=True)


@app.command("import-key")
def import_key(
    file: Path = typer.Argument(..., help="The service-account key (JSON) from Google Cloud Console."),
    issuer_id: str = typer.Option(..., "--issuer-id", help="Issuer id from the Google Pay & Wallet Console."),
    merchant: int | None = typer.Option(
        None, "--merchant", help="Only for this merchant (default: every merchant without its own issuer)."
    ),
) -> None:
    """Store the Google Wallet issuer id and service-account key (encrypted)."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        console.print(f"[red]cannot read {file}: {exc.strerror}[/red]")
        raise typer.Exit(2) from None
    runtime.start()
    from loyalwallet import db
    from loyalwallet.errors import DomainError
    from loyalwallet.wallet.google.issuer import import_key as store

    try:
        with db.transaction() as session:
            row = store(session, data, issuer_id, merchant)
            email, key_id, scope = row.service_account_email, row.key_id, row.merchant_id
    except DomainError as exc:
        console.print(f"[red]{exc.detail}[/red] (nothing was stored)")
        raise typer.Exit(2) from None
    who = "the default issuer" if scope is None else f"merchant {scope}"
    console.print(
        f"[green]Google Wallet issuer {issuer_id} stored for {who}[/green]: service account {email}, key {key_id}."
    )
    console.print(
        "Classes are being sent to Google by the worker; `loyalwallet google status` shows progress."
    )


@app.command()
def status(
    merchant: int | None = typer.Option(None, "--merchant", help="One merchant (default: the installation)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """The issuer in use, objects at Google (and how many guests saved) and failed deliveries."""
    runtime.start()
    from loyalwallet import db
    from loyalwallet.wallet.google.service import status as read_status

    with db.read() as session:
        info = read_status(session, merchant)
    if as_json:
        print(json.dumps(info, ensure_ascii=False, indent=2))
        return
    out = Console()
    if not info["configured"]:
        out.print(
            "Google Wallet: [yellow]not configured[/yellow] (loyalwallet google import-key FILE --issuer-id ID)"
        )
    for issuer in info["issuers"]:
        dev = " [yellow](development key: Google refuses its links)[/yellow]" if issuer["development"] else ""
        out.print(
            f"Issuer {issuer['issuer_id']} ({issuer['scope']}): {issuer['service_account']}, "
            f"key {issuer['key_id']}{dev}"
        )
    out.print(
        f"Classes: {info['classes']}  Objects: {info['objects']} ({info['objects_at_google']} at Google, "
        f"{info['objects_saved']} saved by guests)  "
        f"Deliveries pending: {info['deliveries_pending']}  failed: {info['deliveries_failed']}"
    )
    for failure in info["recent_failures"]:
        out.print(
            f"  [red]failed[/red] #{failure['id']} {failure['topic']} card {failure['card_id']}: {failure['error']}"
        )


@app.command()
def remove(
    merchant: int | None = typer.Option(
        None, "--merchant", help="That merchant's issuer (default: the default one)."
    ),
) -> None:
    """Forget an issuer key (cards keep their objects at Google; links stop being made)."""
    runtime.start()
    from loyalwallet import db
    from loyalwallet.wallet.google.issuer import remove_issuer

    with db.transaction() as session:
        gone = remove_issuer(session, merchant)
    console.print(f"removed {gone} issuer(s)")
