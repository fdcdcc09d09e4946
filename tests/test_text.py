"""loyalwallet.text: the one money formatter and currency table every part uses."""

from __future__ import annotations

import pytest

from loyalwallet.text import CURRENCIES, CURRENCY_SYMBOLS, amount, money, symbol

NB = "\u00a0"


@pytest.mark.parametrize(
    ("minor", "currency", "shown"),
    [
        (3500050, "RUB", f"35{NB}000.50{NB}₽"),
        (0, "RUB", f"0.00{NB}₽"),
        (-100, "USD", f"-1.00{NB}$"),
        (-35050, "EUR", f"-350.50{NB}€"),
        (199, "GBP", f"1.99{NB}GBP"),  # an unknown code is shown as itself
    ],
)
def test_money_display(minor: int, currency: str, shown: str) -> None:
    assert money(minor, currency) == shown


def test_money_without_zero_cents_keeps_the_minus_sign() -> None:
    # The Google Wallet texts drop ".00"; they used to drop the minus sign as well.
    assert money(35000, "RUB", trim_zero_cents=True) == f"350{NB}₽"
    assert money(749950, "RUB", trim_zero_cents=True) == f"7{NB}499.50{NB}₽"
    assert money(-35000, "RUB", trim_zero_cents=True) == f"-350{NB}₽"
    assert money(-123456, "RUB", trim_zero_cents=True) == f"-1{NB}234.56{NB}₽"


def test_google_wallet_texts_use_the_shared_formatter_with_its_minus_sign() -> None:
    from loyalwallet.wallet.google import objects

    assert objects.money(-35000, "RUB", trim_zero_cents=True) == f"-350{NB}₽"


def test_money_of_nothing_is_blank() -> None:
    assert money(None) == ""
    assert amount(None) == ""


def test_amount_for_inputs_and_csv() -> None:
    assert amount(1_000_050, decimal=",", group=" ", trim_zero_cents=True) == "10 000,50"
    assert amount(1_000_000, decimal=".", group=" ", trim_zero_cents=True) == "10 000"
    assert amount(-123450, group="") == "-1234.50"
    assert amount(5, group="") == "0.05"


def test_currency_table() -> None:
    assert CURRENCY_SYMBOLS == {"RUB": "₽", "USD": "$", "EUR": "€"}
    assert all(c.exponent == 2 for c in CURRENCIES.values())
    assert symbol("RUB") == "₽" and symbol("XYZ") == "XYZ"


# --- plural forms ------------------------------------------------------------------------

RU_STAMPS = {
    1: "1 штамп",
    2: "2 штампа",
    5: "5 штампов",
    11: "11 штампов",
    21: "21 штамп",
    22: "22 штампа",
    25: "25 штампов",
}


@pytest.mark.parametrize(("n", "shown"), sorted(RU_STAMPS.items()))
def test_russian_has_three_plural_forms(n: int, shown: str) -> None:
    """The catalogs used to keep the first form only: "1 штампов", "2 возвратов"."""
    from loyalwallet.text import ngettext_for, plural

    assert plural("ru", "%(num)s stamp", "%(num)s stamps", n) == shown
    word = ngettext_for("ru")("point", "points", n)
    assert word == {1: "балл", 21: "балл", 2: "балла", 22: "балла"}.get(n, "баллов")


@pytest.mark.parametrize(("n", "shown"), [(1, "1 stamp"), (2, "2 stamps")])
def test_english_plurals(n: int, shown: str) -> None:
    from loyalwallet.text import plural

    assert plural("en", "%(num)s stamp", "%(num)s stamps", n) == shown


def test_counted_messages_in_both_styles_and_grouped_counts() -> None:
    from loyalwallet.fraud.rules import MESSAGES
    from loyalwallet.text import plural, translate

    hourly = MESSAGES["max_purchases_per_hour"]
    assert translate("ru", hourly, {"purchases": 6, "limit": 5}) == "6 покупок по карте за час (лимит 5)"
    assert translate("ru", hourly, {"purchases": 22, "limit": 5}) == "22 покупки по карте за час (лимит 5)"
    assert (
        translate("en", hourly, {"purchases": 1, "limit": 5})
        == "1 purchase on the card within an hour (limit 5)"
    )
    assert plural("ru", "%(num)s point", "%(num)s points", 12_341) == f"12{NB}341 балл"


def test_every_plural_entry_has_all_russian_forms() -> None:
    from babel.messages.pofile import read_po

    from loyalwallet.text import LOCALE_DIR

    missing = []
    for po in sorted((LOCALE_DIR / "ru").glob("*.po")):
        with po.open("rb") as fh:
            catalog = read_po(fh, locale="ru")
        for message in catalog:
            if message.id and isinstance(message.id, tuple):
                forms = message.string if isinstance(message.string, tuple) else (message.string,)
                if len(forms) != 3 or not all(forms):
                    missing.append(f"{po.name}: {message.id[0]}")
    assert missing == []
