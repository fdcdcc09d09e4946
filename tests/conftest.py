"""Shared fixtures: a migrated database (SQLite by default, PostgreSQL when
LOYALWALLET_TEST_DATABASE_URL is set), the app, merchants with API keys, a live server."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from loyalwallet import db, wiring
from loyalwallet.config import Settings, configure, load_settings, normalise_database_url
from loyalwallet.migrations import migrate
from support import Shop, new_shop

PG_URL = os.environ.get("LOYALWALLET_TEST_DATABASE_URL")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules with a test marked `slow` run first, the longest first (the mark's
    `seconds`, an estimate on a quiet machine; 30 when not given), the rest after in
    their own order. With two workers a long test collected last (the fresh-install
    test sorts near the end) started when the other worker was nearly done and left it
    idle for minutes."""
    weight: dict[str, int] = {}
    for item in items:
        mark = item.get_closest_marker("slow")
        if mark is not None:
            name = _module_of(item)
            weight[name] = max(weight.get(name, 0), int(mark.kwargs.get("seconds", 30)))
    items.sort(key=lambda item: -weight.get(_module_of(item), 0))


def _module_of(item: pytest.Item) -> str:
    module = getattr(item, "module", None)
    return module.__name__ if module is not None else ""


def _ensure_admin_database(server_url: str) -> None:
    """Create the database named in LOYALWALLET_TEST_DATABASE_URL (say `test`) when the
    server has none by that name: the suite connects to it as its admin connection, and a
    fresh PostgreSQL only has `postgres`."""
    from sqlalchemy.exc import OperationalError

    url = normalise_database_url(server_url)
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect():
            return
    except OperationalError as exc:
        if "does not exist" not in str(exc):
            raise
    finally:
        engine.dispose()
    base, _, name = url.rpartition("/")
    name = name.split("?")[0]
    maintenance = create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with maintenance.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
            if not exists:
                try:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
                except Exception as exc:  # another run created it meanwhile
                    if "already exists" not in str(exc):
                        raise
    finally:
        maintenance.dispose()


def _fresh_pg_database(server_url: str) -> tuple[str, str]:
    """A new empty database on the test server; returns (url, name)."""
    name = f"lwtest_{uuid.uuid4().hex[:10]}"
    _ensure_admin_database(server_url)
    admin = create_engine(normalise_database_url(server_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    base, _, _ = normalise_database_url(server_url).rpartition("/")
    return f"{base}/{name}", name


def _drop_pg_database(server_url: str, name: str) -> None:
    db.get_engine().dispose()
    admin = create_engine(normalise_database_url(server_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session", autouse=True)
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    data_dir: Path = tmp_path_factory.mktemp("data")
    pg_name = None
    if PG_URL:
        url, pg_name = _fresh_pg_database(PG_URL)
    else:
        url = f"sqlite:///{data_dir / 'test.db'}"
    os.environ["LOYALWALLET_BASE_URL"] = "http://testserver"
    # The fake webhook targets listen on http://127.0.0.1 (tests of the SSRF guard unset these).
    os.environ["LOYALWALLET_WEBHOOK_ALLOW_PRIVATE"] = "1"
    os.environ["LOYALWALLET_WEBHOOK_ALLOW_HTTP"] = "1"
    s = configure(load_settings(data_dir, url))
    s = configure(Settings(**{**s.__dict__, "run_worker": False, "base_url": "http://testserver"}))
    migrate(s.database_url)
    db.init_engine(s)
    wiring.install()
    yield s
    if pg_name:
        _drop_pg_database(PG_URL or "", pg_name)


@pytest.fixture(scope="session")
def app(settings: Settings) -> Any:
    from loyalwallet.api.app import create_app

    return create_app(settings, run_worker=False)


@pytest.fixture(scope="session")
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def shop(client: TestClient) -> Shop:
    return new_shop(client)


@dataclass
class LiveServer:
    url: str
    app: Any


@pytest.fixture(scope="session")
def live_server(app: Any) -> Iterator[LiveServer]:
    """The app served by uvicorn on 127.0.0.1 in a thread: real sockets, real concurrency."""
    import uvicorn

    from support import free_port

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("live server did not start")
        time.sleep(0.02)
    yield LiveServer(url=f"http://127.0.0.1:{port}", app=app)
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def is_pg(settings: Settings) -> bool:
    return not settings.is_sqlite


BROWSER_PATH = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium driven by Playwright (never a downloaded browser)."""
    if not os.path.exists(BROWSER_PATH):
        if os.environ.get("LOYALWALLET_REQUIRE_BROWSER"):
            pytest.fail(f"{BROWSER_PATH} is missing: apt-get install chromium")
        pytest.skip(f"{BROWSER_PATH} is missing: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=BROWSER_PATH,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-background-networking",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A desktop-sized page; use `phone_page` for a phone viewport."""
    # bypass_csp: Playwright's wait_for_function evaluates strings, which the app's strict
    # CSP forbids; tests/hardening/test_headers.py checks the pages under the CSP itself.
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US", bypass_csp=True)
    p = context.new_page()
    yield p
    context.close()


@pytest.fixture
def phone_page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=3,
        is_mobile=True,
        has_touch=True,
        locale="ru-RU",
        bypass_csp=True,
    )
    p = context.new_page()
    yield p
    context.close()
