"""`loyalwallet iiko connect|status|disconnect`: the merchant's iiko connection."""

from __future__ import annotations

import json
import sys

import typer
from rich.console import Console

from loyalwallet import runtime

app = typer.Typer(no_args_is_help=True, help="iiko: the merchant's iikoCloud connection.")
console = Console(stderr=True)


def _range(text: str) -> tuple[int, int]:
    first, sep, last = text.partition("-")
    try:
        return int(first), int(last if sep else first)
    except ValueError:
        console.print(f"[red]--card-range must look like 7700000001-7700099999, not {text!r}[/red]")
        raise typer.Exit(2) from None


def _tiers(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        category, sep, tier = pair.partition("=")
        if not sep or not category.strip() or not tier.strip():
            console.print(f"[red]--tier takes CATEGORY=TIER, not {pair!r}[/red]")
            raise typer.Exit(2)
        out[category.strip()] = tier.strip()
    return out


@app.command()
def connect(
    merchant: int = typer.Option(..., "--merchant", help="The merchant id."),
    card_range: str = typer.Option(..., "--card-range", help="Card numbers the dealer reserved: FIRST-LAST."),
    organization: str | None = typer.Option(
        None, "--organization", help="iiko organisation id (needed when the login has several)."
    ),
    wallet: str | None = typer.Option(
        None, "--wallet", help="The wallet (or programme) id whose balance cards show."
    ),
    tier: list[str] = typer.Option([], "--tier", help="iiko category=our tier name (repeat)."),
    ledger_program: int | None = typer.Option(
        None, "--ledger-program", help="Our programme whose guests' closed iiko orders become purchases."
    ),
    api_login: str | None = typer.Option(
        None, "--api-login", envvar="LOYALWALLET_IIKO_API_LOGIN", help="Prefer the env variable or --stdin."
    ),
    stdin: bool = typer.Option(False, "--stdin", help="Read the API login from standard input (one line)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Check the API login with iiko and store the connection (the login encrypted)."""
    if stdin:
        api_login = sys.stdin.readline().strip()
    if not api_login:
        console.print("[red]no API login: give --stdin, LOYALWALLET_IIKO_API_LOGIN or --api-login[/red]")
        raise typer.Exit(2)
    first, last = _range(card_range)
    mapping = _tiers(tier)
    runtime.start()
    from loyalwallet import db
    from loyalwallet.errors import DomainError
    from loyalwallet.integrations.iiko import service

    try:
        with db.transaction() as session:
            service.connect(
                session,
                merchant,
                api_login,
                card_first=first,
                card_last=last,
                organization_id=organization,
                wallet_id=wallet,
                tiers=mapping,
                ledger_program_id=ledger_program,
            )
            info = service.status(session, merchant)
    except DomainError as exc:
        if as_json:
            print(json.dumps({"ok": False, "code": exc.code, "error": exc.detail}, ensure_ascii=False))
        console.print(f"[red]{exc.detail}[/red] (nothing was stored)")
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps({"ok": True, **info}, ensure_ascii=False, indent=2))
        return
    console.print(
        f"[green]iiko connected[/green]: {info['organization']['name']}, wallet {info['wallet']['name']!r}, "
        f"cards {first}–{last} ({info['card_range']['left']} left)."
    )
    console.print(f"Order webhooks: {info['webhook_path']} with token {info['webhook_token']}")


@app.command()
def status(
    merchant: int = typer.Option(..., "--merchant", help="The merchant id."),
    check: bool = typer.Option(False, "--check", help="Ask iiko now (test connection) and show its answer."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """The connection, its state and last error; with --check, iiko's live answer."""
    runtime.start()
    from loyalwallet import db
    from loyalwallet.integrations.iiko import service

    answer = None
    with db.transaction() as session:
        if check and service.connection(session, merchant) is not None:
            answer = service.test(session, merchant)
        info = service.status(session, merchant)
    if answer is not None:
        info["iiko_answer"] = answer
    if as_json:
        print(json.dumps(info, ensure_ascii=False, indent=2))
        raise typer.Exit(0 if info["connected"] and info["state"] != "error" else 1)
    out = Console()
    if not info["connected"]:
        out.print("iiko: [yellow]not connected[/yellow] (loyalwallet iiko connect --merchant ID ...)")
        raise typer.Exit(1)
    colour = {"ok": "green", "error": "red"}.get(info["state"], "yellow")
    out.print(
        f"iiko: [{colour}]{info['state']}[/{colour}]  organisation {info['organization']['name']} "
        f"({info['organization']['id']}), login {info['api_login']}"
    )
    rng = info["card_range"]
    out.print(
        f"Wallet shown: {info['wallet']['name']}  Cards: {rng['first']}–{rng['last']}, {rng['left']} left"
    )
    out.print(f"Guests linked: {info['guests']}  iiko deliveries pending: {info['deliveries_pending']}")
    for category, tier_name in info["tiers"].items():
        out.print(f"  category {category} → tier {tier_name}")
    if info["last_error"]:
        out.print(f"[red]Last error:[/red] {info['last_error']}")
    if answer is not None:
        out.print(json.dumps(answer, ensure_ascii=False, indent=2))
    raise typer.Exit(0 if info["state"] != "error" else 1)


@app.command()
def disconnect(merchant: int = typer.Option(..., "--merchant", help="The merchant id.")) -> None:
    """Forget the connection (the login is deleted; cards keep their last values)."""
    runtime.start()
    from loyalwallet import db
    from loyalwallet.integrations.iiko import service

    with db.transaction() as session:
        gone = service.disconnect(session, merchant)
    console.print("iiko disconnected" if gone else "iiko was not connected")
