"""Where webhooks may go: public addresses over https (no SSRF into the server's network).

Checked twice: when a URL is registered (scheme, credentials, https, and every address
its host resolves to), and when a delivery connects. The delivery's connection goes to
the very address that was just checked (`GuardedBackend`), so a DNS answer that changes
in between (rebinding) cannot smuggle a private address in.

LOYALWALLET_WEBHOOK_ALLOW_HTTP=1 lets plain http through; LOYALWALLET_WEBHOOK_ALLOW_PRIVATE=1
lets any address through (a CRM on the same LAN; the tests' fakes on 127.0.0.1).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

import httpcore
import httpx

from loyalwallet.config import env

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _flag(name: str) -> bool:
    return (env(name, "0") or "0").lower() in ("1", "true", "yes")


def allow_http() -> bool:
    return _flag("WEBHOOK_ALLOW_HTTP")


def allow_private() -> bool:
    return _flag("WEBHOOK_ALLOW_PRIVATE")


class Refused(Exception):
    """A URL or an address webhooks must not go to; `code` is the API's error code."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def address_problem(ip: IPAddress) -> str | None:
    """Why a webhook may not go to `ip` ("loopback", "private", ...); None: public."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d is the IPv4 address itself
            return address_problem(ip.ipv4_mapped)
        embedded = ip.sixtofour or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None)
        if embedded is not None and (problem := address_problem(embedded)):
            return problem
    for attr, label in (
        ("is_unspecified", "unspecified"),
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_reserved", "reserved"),
        ("is_private", "private"),
    ):
        if getattr(ip, attr):
            return label
    return None if ip.is_global else "non-public"


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (a literal address resolves to itself)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise Refused("webhook_url_unresolvable", f"{host} does not resolve ({exc})") from None
    addresses: list[IPAddress] = []
    for family, _type, _proto, _name, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            ip = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
            if ip not in addresses:
                addresses.append(ip)
    if not addresses:
        raise Refused("webhook_url_unresolvable", f"{host} has no IPv4 or IPv6 address")
    return addresses


def check_addresses(host: str, addresses: Iterable[IPAddress]) -> None:
    if allow_private():
        return
    for ip in addresses:
        if problem := address_problem(ip):
            raise Refused(
                "webhook_url_forbidden",
                f"{host} resolves to {ip}, a {problem} address; webhooks go only to public addresses",
            )


def check_url(url: str, *, resolve_host: bool = True) -> str:
    """The URL, stripped, if webhooks may go there; Refused otherwise."""
    url = url.strip()
    try:
        parsed = httpx.URL(url)
    except Exception:
        raise Refused("validation_error", "not a valid URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise Refused("validation_error", "the URL must be http:// or https:// with a host")
    if parsed.userinfo:
        raise Refused("validation_error", "put no credentials in the URL")
    if parsed.scheme == "http" and not allow_http():
        raise Refused("webhook_url_insecure", "the URL must be https://")
    if resolve_host and not allow_private():
        host = parsed.raw_host.decode("ascii")
        check_addresses(host, resolve(host, parsed.port or (443 if parsed.scheme == "https" else 80)))
    return url


class GuardedBackend(httpcore.SyncBackend):
    """Resolves the host itself, refuses non-public addresses, and connects to the address
    it checked (never resolving twice)."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = resolve(host, port)
        except Refused as exc:  # DNS may come back: worth a retry, unlike a refusal
            raise httpcore.ConnectError(exc.reason) from None
        check_addresses(host, addresses)
        error: Exception | None = None
        for ip in addresses:
            try:
                return super().connect_tcp(str(ip), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error


def transport(max_connections: int, max_keepalive: int) -> httpx.HTTPTransport:
    """An httpx transport whose every connection goes through GuardedBackend."""
    t = httpx.HTTPTransport()
    # httpx has no public hook for the network backend: give it a pool that has one.
    t._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=max_connections,
        max_keepalive_connections=max_keepalive,
        keepalive_expiry=5.0,
        network_backend=GuardedBackend(),
    )
    return t
