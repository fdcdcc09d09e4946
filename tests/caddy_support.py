"""Caddy from Debian in tests, configured from the shipped deploy/Caddyfile*.

The test variant is the shipped file with only what a test must change replaced: the site
address (a local name or address instead of the public domain), the upstreams (our test
servers' ports instead of 127.0.0.1:8000 / 10.0.0.11:8000), and a global block that turns
on Caddy's internal CA (`local_certs`: the same as `tls internal` on every site), keeps the
root out of the system's trust store, moves the HTTP port, and turns the admin endpoint off
(several Caddys may run at once). Everything else — matchers, headers, health checks, load
balancing — is the file an operator installs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
CADDY = shutil.which("caddy") or "/usr/bin/caddy"
PUBLIC_SITE = "loyalty.example.com"


def have_caddy() -> bool:
    return os.access(CADDY, os.X_OK)


def caddyfile_for_test(
    source: Path,
    *,
    site: str,
    upstreams: dict[str, str],
    http_port: int,
    https_port: int = 443,
) -> str:
    """The shipped Caddyfile with the site address and upstreams replaced."""
    text = source.read_text()
    assert PUBLIC_SITE in text, f"{source} no longer serves {PUBLIC_SITE}"
    text = text.replace(f"{PUBLIC_SITE} {{", f"{site} {{")
    for shipped, ours in upstreams.items():
        assert shipped in text, f"{source} has no upstream {shipped}"
        text = text.replace(shipped, ours)
    options = "\n".join(
        [
            "{",
            "\tadmin off",
            "\tlocal_certs",
            "\tskip_install_trust",
            f"\thttp_port {http_port}",
            f"\thttps_port {https_port}",
            "}",
            "",
        ]
    )
    return options + text


@dataclass
class Caddy:
    """One `caddy run` process; its own data dir holds the internal CA."""

    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def root_ca(self) -> Path:
        return self.directory / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"

    @property
    def log(self) -> Path:
        return self.directory / "caddy.log"

    def wait_for_ca(self, timeout: float = 60) -> Path:
        deadline = time.monotonic() + timeout
        while not self.root_ca.exists():
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.1)
        return self.root_ca

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


def start_caddy(directory: Path, caddyfile: str, prefix: list[str] | None = None) -> Caddy:
    """Run Caddy on this configuration (`prefix`: e.g. `ip netns exec NAME`)."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "Caddyfile"
    config.write_text(caddyfile)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(directory),
        "XDG_DATA_HOME": str(directory / "data"),
        "XDG_CONFIG_HOME": str(directory / "config"),
    }
    check = subprocess.run(
        [CADDY, "validate", "--config", str(config), "--adapter", "caddyfile"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr
    log = (directory / "caddy.log").open("wb")
    process = subprocess.Popen(
        [*(prefix or []), CADDY, "run", "--config", str(config), "--adapter", "caddyfile"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    return Caddy(directory, process)
