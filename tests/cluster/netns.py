"""Hosts on one machine: Linux network namespaces joined by a bridge (needs root).

Each host is a namespace with its own loopback and one interface (a veth pair whose other
end sits on the bridge), so each has its own address, ports and connections: a process
killed in one leaves the others' connections to it dead exactly as across machines. The
test's own process (the root namespace) gets the bridge's first address: it plays the
guests' network and the outside services (the fake APNs).

No forwarding, routes or firewall rules are added: the traffic stays on the bridge between
the namespaces made here. Everything is removed on exit (`Network.close`, also registered
with atexit), and leftovers of a run that was killed are removed by the next one.
"""

from __future__ import annotations

import atexit
import ipaddress
import itertools
import os
import random
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

PREFIX = "lwc"  # every namespace and link made here starts with it


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def can_build() -> str | None:
    """Why hosts cannot be built here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if subprocess.run(["which", "ip"], capture_output=True).returncode != 0:
        return "iproute2 (`ip`) is missing"
    probe = f"{PREFIX}probe{os.getpid() % 100000}"
    made = ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"cannot make a network namespace: {made.stderr.strip()}"
    ip("netns", "del", probe, check=False)
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers() -> None:
    """Namespaces and bridges of runs whose process is gone (named lwc<pid>...)."""
    for line in ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith(PREFIX) and "-" in name:
            pid = name[len(PREFIX) :].split("-")[0]
            if pid.isdigit() and not _alive(int(pid)):
                ip("netns", "del", name, check=False)
    for line in ip("-o", "link", "show", check=False).stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]  # lwc<pid>br, lwc<pid><host>
        pid = "".join(itertools.takewhile(str.isdigit, name[len(PREFIX) :]))
        if name.startswith(PREFIX) and pid and not _alive(int(pid)):
            ip("link", "del", name, check=False)


def _free_subnet() -> ipaddress.IPv4Network:
    used = ip("-4", "-o", "addr", "show").stdout + ip("-4", "route", "show").stdout
    for _ in range(200):
        net = ipaddress.ip_network(f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.0/24")
        if str(net.network_address).rsplit(".", 1)[0] + "." not in used:
            return net
    raise RuntimeError("no free 10.x.y.0/24 subnet for the test network")


@dataclass
class Host:
    name: str  # short: app1, db, lb...
    namespace: str
    address: str
    link: str  # the host end of its veth pair, on the bridge
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        """Start a process on this host (`ip netns exec` execs it: its pid is the process's)."""
        out: IO[bytes] = log.open("ab")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace, *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        self.processes.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL, as a host losing power takes its processes (no clean shutdown)."""
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: the whole group
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass


class Network:
    """A bridge and the hosts on it; `close()` removes them all."""

    def __init__(self) -> None:
        remove_leftovers()
        self.id = f"{PREFIX}{os.getpid()}"
        self.bridge = f"{self.id}br"
        assert len(self.bridge) <= 15, self.bridge
        self.subnet = _free_subnet()
        self._addresses = iter(self.subnet.hosts())
        self.gateway = str(next(self._addresses))  # the root namespace: guests, fakes
        self.hosts: dict[str, Host] = {}
        self._closed = False
        atexit.register(self.close)
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")

    def add(self, name: str, last_octet: int) -> Host:
        namespace = f"{self.id}-{name}"
        address = str(self.subnet.network_address + last_octet)
        outside, inside = f"{self.id}{name}"[:15], f"v{self.id}{name}"[:15]
        assert outside != inside
        ip("netns", "add", namespace)
        ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        ip("link", "set", inside, "netns", namespace)
        ip("link", "set", outside, "master", self.bridge)
        ip("link", "set", outside, "up")
        ip("-n", namespace, "link", "set", "lo", "up")
        ip("-n", namespace, "link", "set", inside, "name", "eth0")
        ip("-n", namespace, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0")
        ip("-n", namespace, "link", "set", "eth0", "up")
        host = Host(name, namespace, address, outside)
        self.hosts[name] = host
        return host

    def close(self) -> None:
        """Kill every process started on a host, then remove the namespaces and the bridge
        (each step on its own: a failure never leaves the rest behind)."""
        if self._closed:
            return
        self._closed = True
        for host in self.hosts.values():
            for proc in host.processes:
                _kill(proc)
            # Both ends of the pair at once (a namespace's own goes only when the kernel
            # has let go of it, which can be later than its name's removal).
            ip("link", "del", host.link, check=False)
            ip("netns", "del", host.namespace, check=False)
        ip("link", "del", self.bridge, check=False)

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
