"""The Telegram card counts stamps as every other view does: stamps_required 6 is five
stamps to collect (programs.rules.StampRules)."""

from __future__ import annotations

from loyalwallet.tgcard.rules import card_caption


def test_stamp_caption_counts_the_stamps_to_collect() -> None:
    view = {
        "program_kind": "stamp",
        "program_name": "Кофе",
        "stamps": 3,
        "stamps_required": 6,
        "stamps_to_collect": 5,
    }
    text = card_caption(view, merchant="Зерно", code="1234", offers=[], message=None, _=lambda s: s)
    assert "Stamps: 3 of 5" in text
