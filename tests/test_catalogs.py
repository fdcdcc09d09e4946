"""Every message a page can show has its Russian: a service's error (`DomainError`'s
detail, translated by the page that shows it) and every flash message (`redirect`).
Messages only the JSON API and the wallets' web services answer stay English."""

from __future__ import annotations

import ast
import string
from pathlib import Path

from loyalwallet.errors import Explained, not_found, translated
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
    "api/errors.py",  # FastAPI's own errors as problem+json
    "api/guard.py",  # the body-size guard answers problem+json before any page
    "api/inputs.py",  # pydantic's English messages on the JSON API's bodies
    "outbox/api.py",
}
# The argument that holds the message a person reads (an Explained's is its template;
# not_found's is the thing's name, translated into the template).
MESSAGE_ARG = {"DomainError": 1, "Explained": 1, "redirect": 1, "not_found": 0}


def _message_args() -> list[tuple[str, int, ast.expr]]:
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
            found.append((where, node.lineno, node.args[index]))
    return found


def _literals(arg: ast.expr) -> list[str]:
    """The message's text: a literal, or each literal of `a if c else b`."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return [arg.value]
    if isinstance(arg, ast.IfExp):
        return _literals(arg.body) + _literals(arg.orelse)
    return []


def _built(arg: ast.expr) -> bool:
    """The message is an f-string (or an f-string glued to, or chosen among, others)."""
    if isinstance(arg, ast.JoinedStr):
        return True
    if isinstance(arg, ast.IfExp):
        return _built(arg.body) or _built(arg.orelse)
    if isinstance(arg, ast.BinOp):
        return _built(arg.left) or _built(arg.right)
    return False


def shown_messages() -> list[tuple[str, str]]:
    return [(where, text) for where, _, arg in _message_args() for text in _literals(arg)]


def test_no_message_a_page_shows_is_an_f_string() -> None:
    """An f-string cannot be looked up in a catalog: such a message is an
    `Explained(code, "template {name}", name=value)`, translated when shown."""
    found = [f"{where}:{line}: {ast.unparse(arg)}" for where, line, arg in _message_args() if _built(arg)]
    assert found == [], "make these Explained templates:\n" + "\n".join(found)


def test_every_message_a_page_shows_has_its_russian() -> None:
    catalog = translations("ru")._catalog  # type: ignore[attr-defined]
    messages = shown_messages()
    assert len(messages) > 150
    missing = sorted({f"{where}: {text}" for where, text in messages if text not in catalog})
    assert missing == [], "add these to web/locale/ru/*.po:\n" + "\n".join(missing)


def _fields(template: str) -> set[str]:
    return {f"{name}!{conv}:{spec}" for _, name, spec, conv in string.Formatter().parse(template) if name}


def test_a_templates_russian_fills_in_the_same_values() -> None:
    """An Explained's Russian names the same {fields} as its English: a misspelt one would
    show the English (translated() falls back) instead of the Russian."""
    catalog = translations("ru")._catalog  # type: ignore[attr-defined]
    wrong = sorted(
        {
            f"{where}: {text}"
            for where, _, arg in _message_args()
            for text in _literals(arg)
            if "{" in text and text in catalog and _fields(catalog[text]) != _fields(text)
        }
    )
    assert wrong == [], "the Russian of these names other {fields}:\n" + "\n".join(wrong)


def test_a_template_is_translated_with_its_values_and_the_api_keeps_the_english() -> None:
    ru = translations("ru").gettext
    missing = not_found("card")
    assert (missing.detail, translated(missing, ru)) == ("card not found", "не найдено: карта")
    short = Explained("insufficient_points", "the card has {balance} points", balance=7, extra={"balance": 7})
    assert translated(short, ru) == "баллов на карте: 7"
    assert short.problem()["detail"] == "the card has 7 points" and short.problem()["balance"] == 7
