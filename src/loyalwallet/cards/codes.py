"""Card codes: what the barcode holds and what a barista may type.

13 digits: 12 random ones and a Luhn check digit, so a mistyped digit is caught before
any lookup. Imported plastic cards keep their own numbers (any 4-32 letters/digits).
"""

from __future__ import annotations

import re
import secrets

CODE_RE = re.compile(r"^[A-Za-z0-9-]{4,32}$")


def luhn_digit(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_ok(code: str) -> bool:
    return code.isdigit() and len(code) > 1 and luhn_digit(code[:-1]) == code[-1]


def new_code(prefix: str = "") -> str:
    body = prefix + "".join(secrets.choice("0123456789") for _ in range(12 - len(prefix)))
    if body[0] == "0":  # keep a leading digit so spreadsheets do not eat zeros
        body = "1" + body[1:]
    return body + luhn_digit(body)


def normalise(code: str) -> str:
    """Scanners and people add spaces and dashes; the code is compared without them."""
    return code.strip().replace(" ", "")
