"""`loyalwallet staff reset-password LOGIN`: a way back in for a staff member (the owner
included) who forgot the password, without the admin.

The new password is generated and printed once, or read from standard input with
`--stdin` (one line, for scripts). Every session of that person ends at once.
"""

from __future__ import annotations

import secrets
import sys

import typer
from rich.console import Console

from loyalwallet import runtime

app = typer.Typer(no_args_is_help=True, help="Staff logins of the admin and the cashier page.")
console = Console(stderr=True)
MIN_LENGTH = 8


@app.command("reset-password")
def reset_password(
    login: str = typer.Argument(..., help="The staff member's login (as typed on the login page)."),
    from_stdin: bool = typer.Option(
        False,
        "--stdin",
        help="Read the new password from standard input (one line) instead of generating one.",
    ),
) -> None:
    """Set a new password for LOGIN and log that person out everywhere."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if len(password) < MIN_LENGTH:
            console.print(
                f"[red]the password needs at least {MIN_LENGTH} characters[/red] (nothing was changed)"
            )
            raise typer.Exit(2)
    else:
        password = secrets.token_urlsafe(12)
    runtime.start()
    from sqlalchemy import select

    from loyalwallet import db
    from loyalwallet.merchants.actors import system
    from loyalwallet.merchants.models import Staff
    from loyalwallet.merchants.passwords import hash_password
    from loyalwallet.merchants.service import audit
    from loyalwallet.web.sessions import end_all_for

    wanted = login.strip().lower()
    with db.transaction() as session:
        staff = session.scalar(select(Staff).where(Staff.login == wanted))
        if staff is None:
            console.print(f"[red]no staff login {wanted!r}[/red] (nothing was changed)")
            raise typer.Exit(2)
        staff.password_hash = hash_password(password)
        end_all_for(session, staff.id)
        audit(session, system(staff.merchant_id), "staff.reset_password", "staff", staff.id, {"via": "cli"})
        inactive = not staff.active
    if from_stdin:
        console.print(f"[green]password of {wanted} changed[/green]; every session of it has ended")
    else:
        print(password)
        console.print(
            f"[green]new password of {wanted}[/green] (shown once, above); every session of it has ended"
        )
    if inactive:
        console.print("[yellow]this login is disabled: an owner must enable it on /admin/staff[/yellow]")
