"""`loyalwallet import customers FILE`: bring an existing customer base in.

Reads the whole file, checks every row (and against the database), prints the bad rows,
and writes only after confirmation: `--dry-run` never writes; with bad rows present the
good ones are imported after a yes (or `--yes`). Guests whose phone already holds a card
of the program are skipped, so a re-run after an interruption picks up where it stopped.
"""

from __future__ import annotations

import csv
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from loyalwallet import runtime

app = typer.Typer(no_args_is_help=True, help="Import data from another system.")
console = Console(stderr=True)
BATCH = 500


def _merchant_id(given: int | None) -> int:
    from sqlalchemy import select

    from loyalwallet import db
    from loyalwallet.merchants.models import Merchant

    with db.read() as session:
        ids = list(session.scalars(select(Merchant.id).order_by(Merchant.id).limit(2)))
    if given is not None:
        return given
    if len(ids) != 1:
        console.print("[red]there are several merchants (or none): give --merchant ID[/red]")
        raise typer.Exit(2)
    return ids[0]


@app.command("customers")
def customers(
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, readable=True, help="CSV: phone, name, birthday, balance, card"
    ),
    program_id: int = typer.Option(..., "--program", help="The program the cards join."),
    merchant_id: int | None = typer.Option(
        None, "--merchant", help="Needed when the database has several merchants."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check and report only; write nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Import the good rows without asking."),
    report: Path | None = typer.Option(
        None, "--report", help="Write every bad row with its reason to this CSV."
    ),
    encoding: str = typer.Option("utf-8-sig", help="The file's encoding (cp1251 for old Excel exports)."),
) -> None:
    """Import guests with their balances and plastic card numbers."""
    from loyalwallet import db
    from loyalwallet.config import get_settings
    from loyalwallet.errors import DomainError
    from loyalwallet.imports import rules, service
    from loyalwallet.merchants.actors import system

    runtime.start()
    mid = _merchant_id(merchant_id)
    try:
        text = file.read_text(encoding=encoding)
        rows = rules.read_rows(text, get_settings().default_region)
        with db.read() as session:
            program = service.program_for_import(session, mid, program_id)
            service.plan(session, mid, program, rows)
    except (DomainError, UnicodeDecodeError) as exc:
        console.print(f"[red]{getattr(exc, 'detail', exc)}[/red]")
        raise typer.Exit(2) from None
    new = [r for r in rows if r.status == "new"]
    exists = [r for r in rows if r.status == "exists"]
    bad = [r for r in rows if r.status == "error"]
    summary = Table(title=f"{file.name} → {program.name}", show_header=False)
    summary.add_row("rows", str(len(rows)))
    summary.add_row("[green]to import[/green]", str(len(new)))
    summary.add_row("points to import", str(sum(r.balance for r in new)))
    summary.add_row("already there (skipped)", str(len(exists)))
    summary.add_row("[red]bad[/red]", str(len(bad)))
    console.print(summary)
    if bad:
        table = Table("line", "problem", title="Bad rows (not imported)")
        for r in bad[:30]:
            table.add_row(str(r.line), "; ".join(r.errors))
        console.print(table)
        if len(bad) > 30:
            console.print(f"… and {len(bad) - 30} more (see --report)")
    if report is not None:
        with report.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["line", "problem"])
            for r in bad:
                writer.writerow([r.line, "; ".join(r.errors)])
        console.print(f"bad rows written to {report}")
    if dry_run:
        console.print("[yellow]dry run: nothing was written[/yellow]")
        raise typer.Exit(1 if bad else 0)
    if not new:
        console.print("nothing to import")
        raise typer.Exit(1 if bad else 0)
    question = f"Import {len(new)} good rows" + (f" and leave out {len(bad)} bad ones?" if bad else "?")
    if not yes and not typer.confirm(question, default=False):
        console.print("nothing was written")
        raise typer.Exit(1)
    actor = system(mid)
    imported = 0
    with Progress(
        TextColumn("[bold]importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("import", total=len(new))
        for i in range(0, len(new), BATCH):
            # One transaction per batch: a crash loses at most a batch, and the re-run skips the rest.
            with db.transaction() as session:
                program = service.program_for_import(session, mid, program_id)
                imported += service.apply(
                    session, actor, program, new[i : i + BATCH], file.name, lambda n: bar.advance(task, n)
                )
    console.print(f"[green]imported {imported} guests[/green]")
