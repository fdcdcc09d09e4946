"""Every message a page can show has its Russian: a service's error (`DomainError`'s
detail, translated by the page that shows it) and every flash message (`redirect`).
Messages only the JSON API and the wallets' web services answer stay English."""

from __future__ import annotations

import ast
from pathlib import Path

from loyalwallet.text import translations

SRC = Path(__file__).resolve().parents[1] / "src" / "loyalwallet"

# Modules that answer machines only (API clients, Apple's and iiko's servers).
API_ONLY = {
    "api/deps.py",
    "wallet/apple/service.py",
    "wallet/apple/api.py",
    "integrations/iiko/api.py",
    "integrations/iiko/orders.py",
    "checkout/idempotency.py",
    "fraud/linking.py",  # its one English detail names the API call to make
    "tgcard/public.py",  # Telegram's webhook
    "tgcard/bots.py",
}
# The argument that holds the message a person reads.
MESSAGE_ARG = {"DomainError": 1, "redirect": 1}


def shown_messages() -> list[tuple[str, str]]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        where = path.relative_to(SRC).as_posix()
        if where.startswith("migrations/") or where in API_ONLY:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            index = MESSAGE_ARG.get(name)
            if index is None or len(node.args) <= index:
                continue
            arg = node.args[index]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append((where, arg.value))
    return found


def test_every_message_a_page_shows_has_its_russian() -> None:
    catalog = translations("ru")._catalog  # type: ignore[attr-defined]
    messages = shown_messages()
    assert len(messages) > 150
    missing = sorted({f"{where}: {text}" for where, text in messages if text not in catalog})
    assert missing == [], "add these to web/locale/ru/*.po:\n" + "\n".join(missing)
