"""Security headers and cookie flags of every answer, set in one place (api/guard.py runs
`security_headers` on each response start).

- Content-Security-Policy: scripts only from our own origin (no inline script: the
  templates' JavaScript lives in /static; their `<script type="application/json">` data
  blocks are not executed), and styles likewise (no style attributes or <style> blocks:
  classes in /static; a page's brand colours come as /brand/{colours}.css).
  `/docs` and `/redoc` (Swagger UI, ReDoc, served by us) set their own policy in
  web/front.py: their one inline script allowed by its hash, styles inline.
- frame-ancestors 'none' and X-Frame-Options DENY everywhere but the guest join pages
  (/join/...), which the website widget shows in an iframe on the café's site, by design.
- X-Content-Type-Options nosniff, Referrer-Policy, Cross-Origin-Opener-Policy.
- Cache-Control no-store on staff pages, login and every API answer (they carry personal
  data), unless the route set its own (content-addressed images cache forever).
- Under an https base URL: Strict-Transport-Security, and every cookie gets Secure.
"""

from __future__ import annotations

from typing import Any

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors {ancestors}"
)
FRAMEABLE = ("/join/",)
NO_STORE = ("/admin", "/cashier", "/login", "/logout", "/account", "/api/", "/join/", "/j/", "/c/", "/r/")
HSTS = "max-age=31536000; includeSubDomains"


# The policy's two forms (built once: this runs for every answer).
_CSP = {
    frameable: CSP.format(ancestors="*" if frameable else "'none'").encode() for frameable in (True, False)
}


def security_headers(https: bool) -> Any:
    """The hook for api.guard.Guard: edits a response's headers in place."""

    def hook(scope: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
        path = str(scope.get("path", ""))
        frameable = path.startswith(FRAMEABLE)
        present = {k.lower() for k, _ in headers}  # what the route set itself stays
        if b"content-security-policy" not in present:
            headers.append((b"content-security-policy", _CSP[frameable]))
        for name, value in (
            (b"x-frame-options", None if frameable else b"DENY"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"strict-origin-when-cross-origin"),
        ):
            if value is not None and name not in present:
                headers.append((name, value))
        if path.startswith(NO_STORE) and b"cache-control" not in present:
            headers.append((b"cache-control", b"no-store"))
        if https:
            headers.append((b"strict-transport-security", HSTS.encode()))
            for i, (name, value) in enumerate(headers):
                attrs = [a.strip().lower() for a in value.split(b";")[1:]]
                if name.lower() == b"set-cookie" and b"secure" not in attrs:
                    headers[i] = (name, value + b"; Secure")

    return hook
