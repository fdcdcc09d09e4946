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


# --- SMS delivery reports (sms.ru/api/status and its callback) -------------------------
# SMS.ru's status codes of one message: 100 queued, 101 passed to the operator, 102 sent
# (on its way), 103 delivered, 104 not delivered (its lifetime ran out), 105 deleted by
# the operator, 106 the phone failed, 107 not delivered (unknown reason), 108 rejected,
# 110 read (Viber), 150 no route to the number; -1 the message is not found.
SMS_DELIVERED = frozenset({103, 110})
SMS_UNDELIVERED = frozenset({104, 105, 106, 107, 108, 150})
# Only 150 ("cannot be delivered: no route found to this number") is about the number
# itself; the others (lifetime ran out, deleted by the operator, the phone failed, unknown,
# rejected) may pass next time. A number reported 150 is not texted again by campaigns.
SMS_NO_ROUTE = frozenset({150})
# Asked again after these pauses while the message is on its way; then given up (the
# message stays "sent": nobody said it failed). With a callback the first ask comes late:
# the callback normally tells first, the poll only catches one that was lost.
SMS_POLL_PAUSES = (
    dt.timedelta(minutes=2),
    dt.timedelta(minutes=10),
    dt.timedelta(hours=1),
    dt.timedelta(hours=6),
    dt.timedelta(hours=24),
)
SMS_POLL_AFTER_CALLBACK = dt.timedelta(hours=1)


def sms_outcome(code: int | None) -> str | None:
    """delivered | undelivered for a final SMS.ru status code, None while on its way."""
    if code in SMS_DELIVERED:
        return "delivered"
    if code in SMS_UNDELIVERED:
        return "undelivered"
    return None


def next_sms_poll(polls: int, now: dt.datetime) -> dt.datetime | None:
    """When to ask again after `polls` asks that found the message on its way."""
    return now + SMS_POLL_PAUSES[polls] if polls < len(SMS_POLL_PAUSES) else None


def parse_sms_callback(entries: list[str]) -> list[tuple[str, int]]:
    """SMS.ru's callback posts `data[]` fields (up to 100), each a few lines:
    "sms_status", the sms_id, the status code, the time. -> [(sms_id, code)]; other
    kinds of entry and malformed ones are left out."""
    out: list[tuple[str, int]] = []
    for entry in entries:
        lines = [line.strip() for line in entry.splitlines()]
        if len(lines) < 3 or lines[0] != "sms_status":
            continue
        sms_id, code = lines[1], lines[2]
        if not sms_id or len(sms_id) > 64 or not code.lstrip("-").isdigit():
            continue
        out.append((sms_id, int(code)))
    return out
