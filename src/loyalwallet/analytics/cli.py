"""`loyalwallet analytics fold`: build the guests' purchase-day bitmaps and the retention
table's counts now, with progress bars (the worker does the same in small steps; after an
upgrade of a big database this gets it done at once). Safe to interrupt and run again:
it resumes."""

from __future__ import annotations

import datetime as dt

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from loyalwallet import runtime

app = typer.Typer(no_args_is_help=True, help="Dashboard figures.")
console = Console(stderr=True)


@app.command("fold")
def fold(
    settle: float = typer.Option(60.0, help="Leave purchases younger than this many seconds to the worker."),
    cards: int = typer.Option(20_000, help="Cards per step (each step is its own transaction)."),
    backfill_over: int = typer.Option(
        200_000, help="Fold card by card (resumable) when more purchases than this wait."
    ),
) -> None:
    """Fold every purchase into the guests' purchase-day bitmaps, and count the card
    months per cohort (both resumable)."""
    from loyalwallet import db
    from loyalwallet.analytics import activity, cohorts, rollup

    runtime.start()
    with Progress(
        TextColumn("guests' purchase days"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        with db.read() as session:
            start = activity.progress(session)
        task = bar.add_task("fold", total=100, completed=int(100 * (start or 0)))

        def show(done: float | None) -> None:
            bar.update(task, completed=100 if done is None else 100 * done)

        steps = activity.catch_up(
            settle=dt.timedelta(seconds=settle), on_step=show, cards=cards, backfill_over=backfill_over
        )
        bar.update(task, completed=100)
    with Progress(
        TextColumn("retention table"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(), console=console
    ) as bar:
        with db.read() as session:
            start = cohorts.progress(session)
        task = bar.add_task("fill", total=100, completed=100 if start is None else int(100 * start))
        while rollup.fill_step(cohorts.CARDS_PER_STEP):
            with db.read() as session:
                done = cohorts.progress(session)
            bar.update(task, completed=100 if done is None else 100 * done)
        bar.update(task, completed=100)
    console.print(f"[green]up to date ({steps} steps)[/green]")
