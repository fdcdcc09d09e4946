"""Schemathesis over /openapi.json against the live server (SQLite, or PostgreSQL when
LOYALWALLET_TEST_DATABASE_URL is set): positive and negative data, stateful links, a
fixed seed, at most 60 s of fuzzing. No 5xx, and every answer as the document says.
A longer run: `make fuzz` (bench/fuzz.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import fuzzing
from fakes.telegram import FakeTelegram
from support import Shop

pytestmark = pytest.mark.slow(seconds=35)


def test_the_api_survives_the_fuzzer(
    live_server: Any, shop: Shop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Outside services answer from local fakes (no internet here): a bot token the fuzzer
    # sets is then refused by "Telegram" (422), not unreachable (502).
    telegram = FakeTelegram().start()
    monkeypatch.setenv("LOYALWALLET_TELEGRAM_API_URL", telegram.url)
    shop.program()
    data = fuzzing.run(live_server.url, shop.keys["owner"], tmp_path / "st.json", max_time=60, examples=10)
    got = fuzzing.figures(data)
    print("schemathesis:", got)
    assert got["operations"] > 50, data["_output"]
    telegram.stop()
    assert got["failures"] == {}, got
