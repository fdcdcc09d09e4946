"""`loyalwallet apple ...`: import the Apple certificate and APNs key, show the status."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console

from loyalwallet import runtime

app = typer.Typer(no_args_is_help=True, help="Apple Wallet: certificates, push keys, status.")
console = Console(stderr=True, soft_wrap=True)


def _read(path: Path | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        console.print(f"[red]cannot read {what} {path}: {exc.strerror}[/red]")
        raise typer.Exit(2) from None


@app.command("import-cert")
def import_cert(
    p12: Path | None = typer.Option(
        None, "--p12", help="The .p12 exported from Keychain Access (certificate + key)."
    ),
    password: str | None = typer.Option(None, "--password", help="Password of the .p12."),
    cert: Path | None = typer.Option(
        None, "--cert", help="Or: the pass certificate (PEM, or DER .cer from Apple)."
    ),
    key: Path | None = typer.Option(None, "--key", help="With --cert: its private key (PEM)."),
    key_password: str | None = typer.Option(None, "--key-password", help="Password of an encrypted PEM key."),
    wwdr: Path | None = typer.Option(
        None,
        "--wwdr",
        help="Apple WWDR G4 intermediate (AppleWWDRCAG4.cer) if the .p12/PEM does not include it.",
    ),
    merchant: int | None = typer.Option(
        None, "--merchant", help="Only for this merchant (default: the whole installation)."
    ),
) -> None:
    """Import the Pass Type ID certificate Apple issued; it is stored encrypted. A broken
    file or a wrong password stores nothing."""
    from loyalwallet import db
    from loyalwallet.errors import DomainError
    from loyalwallet.wallet.apple import credentials

    if (p12 is None) == (cert is None):
        console.print("[red]give either --p12 FILE (with --password) or --cert FILE --key FILE[/red]")
        raise typer.Exit(2)
    if cert is not None and key is None:
        console.print("[red]--cert needs --key (the private key in PEM)[/red]")
        raise typer.Exit(2)
    if p12 is not None and password is None and sys.stdin.isatty():
        password = typer.prompt("Password of the .p12", hide_input=True, default="", show_default=False)
    runtime.start()
    try:
        with db.transaction() as session:
            row = credentials.import_certificate(
                session,
                p12=_read(p12, "the .p12"),
                password=password,
                cert=_read(cert, "the certificate"),
                key=_read(key, "the key"),
                key_password=key_password,
                wwdr=_read(wwdr, "the WWDR certificate"),
                merchant_id=merchant,
            )
            summary = (row.pass_type_id, row.team_id, row.not_after)
    except DomainError as exc:
        console.print(f"[red]{exc.detail}[/red] (nothing was stored)")
        raise typer.Exit(2) from None
    credentials.reset_caches()
    console.print(
        f"[green]imported[/green] pass type [cyan]{summary[0]}[/cyan], team [cyan]{summary[1]}[/cyan], "
        f"valid until {summary[2]:%Y-%m-%d}. New passes are signed with it."
    )


@app.command("import-push-key")
def import_push_key(
    p8: Path = typer.Option(..., "--p8", help="The APNs auth key (AuthKey_XXXXXXXXXX.p8)."),
    key_id: str = typer.Option(..., "--key-id", help="Its 10-character key id."),
    team_id: str = typer.Option(..., "--team-id", help="Your 10-character Apple team id."),
) -> None:
    """Use token-based APNs auth (ES256) instead of the pass certificate for pushes."""
    from loyalwallet import db
    from loyalwallet.errors import DomainError
    from loyalwallet.wallet.apple import credentials

    runtime.start()
    data = _read(p8, "the .p8") or b""
    try:
        with db.transaction() as session:
            credentials.store_push_key(session, data, key_id, team_id)
    except DomainError as exc:
        console.print(f"[red]{exc.detail}[/red] (nothing was stored)")
        raise typer.Exit(2) from None
    credentials.reset_caches()
    console.print(f"[green]imported[/green] APNs key {key_id.strip()} of team {team_id.strip()}")


@app.command("dev-cert")
def dev_cert() -> None:
    """Make the self-signed development chain when there is no certificate (as the demo does)."""
    from loyalwallet import db
    from loyalwallet.wallet.apple import credentials

    runtime.start()
    with db.transaction() as session:
        row = credentials.ensure_development_certificate(session)
        kind, ptid = row.kind, row.pass_type_id
    console.print(f"certificate: {kind} ({ptid})")


@app.command()
def status(
    merchant: int | None = typer.Option(None, "--merchant", help="As this merchant sees it."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Which certificate signs passes, how pushes are sent, and what is missing."""
    from loyalwallet import db
    from loyalwallet.wallet.apple import credentials

    runtime.start()
    with db.read() as session:
        info = credentials.status(session, merchant)
    if as_json:
        print(json.dumps(info))
        return
    out = Console(soft_wrap=True)
    out.print(f"certificate: [bold]{info['mode']}[/bold]")
    for name in ("pass_type_id", "team_id", "expires_at", "scope", "push", "web_service_url"):
        if info[name]:
            out.print(f"  {name}: {info[name]}")
    for warning in info["warnings"]:
        out.print(f"[yellow]! {warning}[/yellow]")
