"""deploy/Caddyfile in front of the app (a real Caddy, when installed): the app's security
headers reach the browser unchanged (none stripped, none doubled, no X-Frame-Options
added to the widget's /join/ pages), HSTS is there, and the guest's address arrives as
X-Forwarded-For (a forged one is not believed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from loyalwallet import db
from loyalwallet.web.models import LoginAttempt
from support import Shop, free_port

CADDYFILE = Path(__file__).resolve().parents[2] / "deploy" / "Caddyfile"
SECURITY = ("content-security-policy", "x-frame-options", "x-content-type-options", "referrer-policy")


@pytest.fixture
def caddy(live_server: Any, tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("caddy")
    if binary is None:
        pytest.skip("caddy is not installed (apt-get install caddy)")
    port = free_port()
    upstream = live_server.url.removeprefix("http://")
    text = CADDYFILE.read_text()
    assert "loyalty.example.com {" in text and "reverse_proxy 127.0.0.1:8000" in text
    text = text.replace("loyalty.example.com {", f"http://127.0.0.1:{port} {{")
    text = text.replace("reverse_proxy 127.0.0.1:8000", f"reverse_proxy {upstream}")
    config = tmp_path / "Caddyfile"
    config.write_text("{\n\tadmin off\n}\n" + text)
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    proc = subprocess.Popen(
        [binary, "run", "--config", str(config), "--adapter", "caddyfile"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "caddy.log", "w"),  # noqa: SIM115
    )
    url = f"http://127.0.0.1:{port}"
    # Up, and the app seen healthy by Caddy's active check (/readyz; slow on a loaded machine).
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("caddy did not start: " + (tmp_path / "caddy.log").read_text()[-2000:])
        time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_the_proxy_keeps_the_apps_security_headers(caddy: str, live_server: Any, shop: Shop) -> None:
    pid = shop.program()
    auth = {"Authorization": f"Bearer {shop.keys['owner']}"}
    for path, headers in (
        ("/login", {}),
        ("/admin", {}),
        ("/api/v1/programs", auth),
        (f"/join/{pid}", {}),
        (f"/join/{pid}?embed=1", {}),
    ):
        direct = httpx.get(live_server.url + path, headers=headers)
        proxied = httpx.get(caddy + path, headers=headers)
        assert proxied.status_code == direct.status_code, path
        for name in (*SECURITY, "cache-control"):
            assert proxied.headers.get_list(name) == direct.headers.get_list(name), (path, name)
        assert proxied.headers.get("strict-transport-security", "").startswith("max-age="), (
            path,
            proxied.headers,
        )
        assert "server" not in proxied.headers, path
    # The widget's page stays frameable through the proxy.
    assert "x-frame-options" not in httpx.get(f"{caddy}/join/{pid}?embed=1").headers
    # Caddy's own answer gets the defaults.
    internal = httpx.get(caddy + "/metrics", headers={"X-Forwarded-For": "8.8.8.8"})
    assert internal.headers["x-content-type-options"] == "nosniff"


def test_the_guests_address_reaches_the_app(caddy: str, shop: Shop) -> None:
    # The "guest" connects from 127.0.0.3 and claims to be someone else.
    guest = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.3"))
    login = f"nobody-{shop.merchant_id}@proxy.test"
    page = guest.get(caddy + "/login")
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    r = guest.post(
        caddy + "/login",
        data={"login": login, "password": "wrong", "csrf": csrf},
        headers={"X-Forwarded-For": "203.0.113.9"},
    )
    assert r.status_code == 401
    with db.read() as session:
        ips = list(session.scalars(select(LoginAttempt.ip).where(LoginAttempt.login == login)))
    assert ips == ["127.0.0.3"]
