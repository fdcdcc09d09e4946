"""The Telegram card of a card with several stamp kinds (issue 18) shows each kind."""

from __future__ import annotations

from loyalwallet.tgcard.rules import card_caption, change_text

VIEW = {
    "program_kind": "stamp",
    "program_name": "Кофе и выпечка",
    "stamps": 3,
    "stamps_required": 6,
    "stamps_to_collect": 5,
    "stamp_kinds": [
        {"kind": 1, "name": "Coffee", "stamps": 3, "stamps_to_collect": 5},
        {"kind": 2, "name": "Pastry <b>", "stamps": 1, "stamps_to_collect": 4},
    ],
}


def test_each_kind_in_the_caption_and_the_change_notice() -> None:
    text = card_caption(VIEW, merchant="Зерно", code="1234", offers=[], message=None, _=lambda s: s)
    assert "Coffee 3/5 · Pastry &lt;b&gt; 1/4" in text and "Stamps: 3 of 5" not in text
    assert change_text(VIEW, message=None, _=lambda s: s) == "Coffee 3/5 · Pastry &lt;b&gt; 1/4"
