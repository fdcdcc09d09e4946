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
