"""`loyalwallet rkeeper connect|status|disconnect`: the merchant's r_keeper (FarCards HTTP)
connection. Owner-level: whoever runs the CLI runs the server."""

from __future__ import annotations

import json

import typer
from rich.console import Console

from loyalwallet import runtime

app = typer.Typer(no_args_is_help=True, help="r_keeper: FarCards asks loyalwallet about cards and checks.")
console = Console(stderr=True)


def _numbers(pairs: list[str], key: str, into: dict[str, dict[str, int]]) -> None:
    for pair in pairs:
        tier, sep, number = pair.rpartition("=")
        if not sep or not tier.strip() or not number.strip().isdigit():
            console.print(f"[red]--{key} takes TIER=NUMBER (r_keeper's {key} number), not {pair!r}[/red]")
            raise typer.Exit(2)
        into.setdefault(tier.strip(), {})[key] = int(number)


def _ini(base_url: str, path: str) -> str:
    return (
        "[Server]\n"
        f"Address={base_url.rstrip('/')}{path}\n"
        "GetCardInfoEx=getcardinfoex\n"
        "TransactionsEx=transactionsex\n"
    )


@app.command()
def connect(
    merchant: int = typer.Option(..., "--merchant", help="The merchant id."),
    program: int = typer.Option(..., "--program", help="Our programme whose cards r_keeper serves."),
    discount: list[str] = typer.Option(
        [], "--discount", help="TIER=N: r_keeper's discount number for a tier."
    ),
    bonus: list[str] = typer.Option([], "--bonus", help="TIER=N: r_keeper's bonus number for a tier."),
    rotate: bool = typer.Option(False, "--rotate", help="Make a new secret (the old address stops working)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Connect (or change) r_keeper; prints the ExtDllHttp.ini lines for the dealer."""
    tiers: dict[str, dict[str, int]] = {}
    _numbers(discount, "discount", tiers)
    _numbers(bonus, "bonus", tiers)
    runtime.start()
    from loyalwallet import db
    from loyalwallet.config import get_settings
    from loyalwallet.errors import DomainError
    from loyalwallet.integrations.rkeeper import service

    try:
        with db.transaction() as session:
            service.connect(session, merchant, program, tiers=tiers or None, rotate=rotate)
            info = service.status(session, merchant)
    except DomainError as exc:
        if as_json:
            print(json.dumps({"ok": False, "code": exc.code, "error": exc.detail}, ensure_ascii=False))
        console.print(f"[red]{exc.detail}[/red] (nothing was stored)")
        raise typer.Exit(2) from None
    ini = _ini(get_settings().base_url, info["address_path"])
    if as_json:
        print(json.dumps({"ok": True, **info, "ini": ini}, ensure_ascii=False, indent=2))
        return
    console.print(f"[green]r_keeper connected[/green] to programme {info['program']['name']!r}.")
    console.print("Give the dealer these lines for ExtDllHttp.ini (keep the address secret):")
    print(ini, end="")


@app.command()
def status(
    merchant: int = typer.Option(..., "--merchant", help="The merchant id."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """The connection: programme, tier numbers, checks booked, the last call and error."""
    runtime.start()
    from loyalwallet import db
    from loyalwallet.integrations.rkeeper import service

    with db.read() as session:
        info = service.status(session, merchant)
    if info["connected"]:
        info.pop("address_path")  # shown once at connect (or --rotate), not in every status
    if as_json:
        print(json.dumps(info, ensure_ascii=False, indent=2))
        raise typer.Exit(0 if info["connected"] else 1)
    out = Console()
    if not info["connected"]:
        out.print(
            "r_keeper: [yellow]not connected[/yellow] (loyalwallet rkeeper connect --merchant ID --program ID)"
        )
        raise typer.Exit(1)
    out.print(f"r_keeper: programme {info['program']['name']!r}, secret {info['secret']}")
    for tier, numbers in info["tiers"].items():
        out.print(f"  tier {tier}: " + ", ".join(f"{k} {v}" for k, v in numbers.items()))
    checks = info["checks"]
    out.print(
        f"Checks booked: {checks['booked']}, reversed: {checks['reversed']}, skipped: {checks['skipped']}"
    )
    out.print(f"Last call: {info['last_call_at'] or 'never'}")
    if info["last_error"]:
        out.print(f"[red]Last error:[/red] {info['last_error']}")


@app.command()
def disconnect(merchant: int = typer.Option(..., "--merchant", help="The merchant id.")) -> None:
    """Forget the connection: r_keeper's calls are refused from now on."""
    runtime.start()
    from loyalwallet import db
    from loyalwallet.integrations.rkeeper import service

    with db.transaction() as session:
        gone = service.disconnect(session, merchant)
    console.print("r_keeper disconnected" if gone else "r_keeper was not connected")
