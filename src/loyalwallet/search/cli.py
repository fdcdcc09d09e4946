"""`loyalwallet search reindex`: rebuild the name token index (after an upgrade that
brings the index to existing guests, a restored backup, or guests written with plain SQL)."""

from __future__ import annotations

import typer
from rich.console import Console

from loyalwallet import runtime

app = typer.Typer(no_args_is_help=True, help="Guest search.")
console = Console(stderr=True)


@app.command("reindex")
def reindex(merchant_id: int | None = typer.Option(None, "--merchant", help="Only this merchant.")) -> None:
    """Rebuild the name tokens from the guests' sealed names."""
    from sqlalchemy import select

    from loyalwallet import db
    from loyalwallet.merchants.models import Merchant
    from loyalwallet.search.service import reindex as rebuild

    runtime.start()
    with db.read() as session:
        ids = (
            [merchant_id] if merchant_id else list(session.scalars(select(Merchant.id).order_by(Merchant.id)))
        )
    total = 0
    for mid in ids:
        with db.transaction() as session:
            total += rebuild(session, mid)
    console.print(f"[green]indexed the names of {total} guests[/green]")
