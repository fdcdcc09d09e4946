"""What the HTTP modules read off a request, the same way everywhere."""

from __future__ import annotations

from starlette.requests import Request


def client_ip(request: Request) -> str | None:
    """The address the request came from, as the server sees it (login and OTP limits)."""
    return request.client.host if request.client else None
