"""`loyalwallet email bounce`: the mail system hands a message received for the bounce
address to this command on standard input (Postfix `pipe`, Exim `pipe` transport); a
DSN about one of our messages marks it bounced (messaging.bounces). Exit 0 when the
message was taken (bounced, already known, or ignored: nothing to deliver back), 75
(EX_TEMPFAIL, the mail system tries again later) when the database is unreachable."""

from __future__ import annotations

import sys

import typer

from loyalwallet import runtime

app = typer.Typer(no_args_is_help=True, help="E-mail: late bounces.")

MAX_BYTES = 10 * 1024 * 1024  # a DSN with the whole original attached stays well under


@app.command("bounce")
def bounce(
    to: str | None = typer.Option(
        None,
        "--to",
        help="The address it was received for (Postfix: ${recipient}); else read from its headers.",
    ),
) -> None:
    """Read one message on standard input; mark our message bounced if it is a DSN about it."""
    from sqlalchemy.exc import OperationalError

    from loyalwallet.messaging import bounces

    data = sys.stdin.buffer.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        typer.echo("ignored: too large")
        return
    try:
        runtime.start()
        outcome = bounces.handle(data, to)
    except OperationalError as exc:
        typer.echo(f"database unavailable: {type(exc).__name__}", err=True)
        raise typer.Exit(75) from None
    typer.echo(outcome)


sms_app = typer.Typer(no_args_is_help=True, help="SMS: delivery reports.")


@sms_app.command("callback-url")
def callback_url() -> None:
    """Print the address to give SMS.ru's callback settings (delivery reports)."""
    from loyalwallet.messaging import reports

    runtime.start()
    typer.echo(reports.callback_url())
