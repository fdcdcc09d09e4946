"""Pure rules of sending a card to its guest: channels, the per-card limits, and the
texts (SMS, e-mail subject, text and HTML with the card's colours and logo)."""

from __future__ import annotations

import datetime as dt
from html import escape

from loyalwallet.enrollment.rules import DAY, HOUR, Limit

CHANNELS = ("sms", "email", "telegram")
# Per card: a few sends an hour, a few more a day (a cashier pressing twice is fine,
# a script pumping SMS is not).
LIMITS: tuple[Limit, ...] = (Limit(HOUR, 3), Limit(DAY, 5))


def sms_text(merchant_name: str, web_url: str, intro: str) -> str:
    """One short SMS: the merchant's name and the web card's link (it offers the wallets)."""
    return f"{merchant_name}: {intro} {web_url}"[:300]


def email_subject(program_name: str, merchant_name: str, word: str) -> str:
    return f"{word}: {program_name} · {merchant_name}"[:200]


def email_text(lines: list[str], links: list[tuple[str, str]], footer: str) -> str:
    out = [*lines, ""]
    out += [f"{label}: {url}" for label, url in links]
    out += ["", footer]
    return "\n".join(out)


def email_html(
    *,
    title: str,
    lines: list[str],
    links: list[tuple[str, str]],
    footer: str,
    background: str,
    foreground: str,
    logo_url: str | None,
    logo_text: str,
) -> str:
    """A small table-layout HTML body (mail clients ignore style sheets): everything
    inserted is escaped; colours come from the validated card design."""
    head = (
        f'<img src="{escape(logo_url)}" alt="{escape(logo_text)}" height="40">'
        if logo_url
        else f"<strong>{escape(logo_text)}</strong>"
    )
    body = "".join(f"<p>{escape(line)}</p>\n" for line in lines)
    buttons = "".join(
        f'<p><a href="{escape(url)}" style="display:inline-block;padding:12px 20px;border-radius:10px;'
        f'background:{escape(background)};color:{escape(foreground)};text-decoration:none;font-weight:bold">'
        f"{escape(label)}</a></p>\n"
        for label, url in links
    )
    return (
        '<!doctype html><html><body style="margin:0;background:#f6f3ee;font-family:Arial,sans-serif">\n'
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0"><tr><td align="center">\n'
        '<table role="presentation" width="480" cellpadding="16" cellspacing="0" style="background:#fff">\n'
        f'<tr><td style="background:{escape(background)};color:{escape(foreground)}">{head}</td></tr>\n'
        f'<tr><td><h1 style="font-size:20px">{escape(title)}</h1>{body}{buttons}\n'
        f'<p style="color:#777;font-size:12px">{escape(footer)}</p></td></tr>\n'
        "</table></td></tr></table></body></html>\n"
    )


def retry_after(limits: tuple[Limit, ...], sends: list[dt.datetime], now: dt.datetime) -> int | None:
    from loyalwallet.enrollment.rules import retry_after as wait

    return wait(limits, sends, now)
