"""What the database cannot hold is refused at the door, for every route at once.

PostgreSQL's bigint ends at 2**63 - 1 and its text cannot hold NUL; SQLite's integers end
at the same place. A value outside that, met first by the database, is a 500. Here the
request's path, query string and body (JSON or a posted form) are read once before any
route: an integer outside signed 64-bit or a control character (other than tab, newline
and carriage return) in any string is a 422 `validation_error` naming where it is (a 404
for a number in the path: no row has that id). Lone UTF-16 surrogates (`"\\ud800"`) too:
no database can store them.

The JSON check is cheap on ordinary bodies: the body is walked only when its raw bytes
contain a long digit run or a `\\u` escape of a control character or surrogate.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from loyalwallet.config import env, per_process
from loyalwallet.errors import DomainError

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1

# Control characters but tab, newline, carriage return; DEL; lone surrogates.
_BAD_CHAR = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_NUMBER = re.compile(r"^-?\d+$")
# A number outside signed 64-bit has 19 digits at least: a path without such a run is
# not split into its parts (check_target runs for every request).
_LONG_DIGITS = re.compile(r"\d{19}")
# Raw-bytes triggers for the JSON walk: a 19+ digit run, or an escaped control/surrogate.
_JSON_SUSPECT = re.compile(rb"\d{19,}|\\u(?:00[01][0-9a-fA-F]|007[fF]|[dD][89a-fA-F][0-9a-fA-F]{2})")

DEFAULT_BODY_BYTES = 1_000_000
DEFAULT_UPLOAD_BYTES = 10_000_000
_BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def _int_setting(name: str, default: int) -> int:
    try:
        return int(env(name) or default)
    except ValueError:
        return default


@per_process
def max_body_bytes() -> int:
    return _int_setting("MAX_BODY_BYTES", DEFAULT_BODY_BYTES)


@per_process
def max_upload_bytes() -> int:
    return _int_setting("MAX_UPLOAD_BYTES", DEFAULT_UPLOAD_BYTES)


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def content_type(scope: dict[str, Any]) -> str:
    # Kept in the scope: the Guard asks up to four times per request (its headers do not
    # change; the Guard only ever rewrites content-length).
    kind = scope.get(_CONTENT_TYPE)
    if kind is None:
        kind = scope[_CONTENT_TYPE] = _header(scope, b"content-type").split(";")[0].strip().lower()
    return str(kind)


_CONTENT_TYPE = "loyalwallet.content_type"


def content_length(scope: dict[str, Any]) -> int | None:
    raw = _header(scope, b"content-length")
    return int(raw) if raw.isdigit() else None


# Paths that take less than the default (anyone may post there).
PATH_LIMITS = {"/wallet/apple/v1/log": 64 * 1024}


def body_limit(scope: dict[str, Any]) -> int:
    """Uploads (a multipart form, a raw image or file) may be larger than every other body."""
    fixed = PATH_LIMITS.get(str(scope.get("path", "")))
    if fixed is not None:
        return fixed
    kind = content_type(scope)
    upload = kind.startswith(("multipart/", "image/")) or kind == "application/octet-stream"
    return max_upload_bytes() if upload else max_body_bytes()


def bad_text(value: str) -> bool:
    return _BAD_CHAR.search(value) is not None


def out_of_range(value: int) -> bool:
    return value < INT_MIN or value > INT_MAX


def _number_out_of_range(text: str) -> bool:
    return len(text) >= 19 and _NUMBER.match(text) is not None and out_of_range(int(text))


def _invalid(loc: list[str], msg: str, kind: str) -> DomainError:
    where = ".".join(loc)
    return DomainError(
        "validation_error",
        f"{where}: {msg}" if where else msg,
        errors=[{"loc": loc, "msg": msg, "type": kind}],
    )


_CONTROL_MSG = "control characters are not allowed"
_RANGE_MSG = "the number is outside the signed 64-bit range"


def check_target(scope: dict[str, Any]) -> DomainError | None:
    """The path (404: nothing has that id or name) and the query string (422)."""
    path = str(scope.get("path", ""))
    if bad_text(path) or (
        _LONG_DIGITS.search(path) is not None and any(_number_out_of_range(p) for p in path.split("/"))
    ):
        return DomainError("not_found", "nothing is found at this address")
    query = scope.get("query_string", b"")
    if query:
        text = query.decode("latin-1")
        for key, value in parse_qsl(text, keep_blank_values=True, errors="replace"):
            if bad_text(key) or bad_text(value):
                return _invalid(["query", key], _CONTROL_MSG, "string_control_character")
            if _number_out_of_range(value.strip()):
                return _invalid(["query", key], _RANGE_MSG, "int_out_of_range")
    return None


def wants_body_check(scope: dict[str, Any]) -> bool:
    if scope.get("method") not in _BODY_METHODS:
        return False
    kind = content_type(scope)
    return kind == "application/json" or kind.endswith("+json") or kind == "application/x-www-form-urlencoded"


def _walk(value: Any, loc: list[str]) -> DomainError | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return _invalid(loc, _RANGE_MSG, "int_out_of_range") if out_of_range(value) else None
    if isinstance(value, str):
        return _invalid(loc, _CONTROL_MSG, "string_control_character") if bad_text(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if bad_text(key):
                return _invalid([*loc, "(key)"], _CONTROL_MSG, "string_control_character")
            found = _walk(item, [*loc, key])
            if found is not None:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _walk(item, [*loc, str(i)])
            if found is not None:
                return found
    return None


def check_json(body: bytes) -> DomainError | None:
    if not _JSON_SUSPECT.search(body):
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None  # not JSON: the route's own parsing answers 400
    return _walk(data, [])


def check_form(body: bytes) -> DomainError | None:
    text = body.decode("utf-8", errors="replace")
    for key, value in parse_qsl(text, keep_blank_values=True):
        if bad_text(key) or bad_text(value):
            return _invalid([key], _CONTROL_MSG, "string_control_character")
        if _number_out_of_range(value.strip()):
            return _invalid([key], _RANGE_MSG, "int_out_of_range")
    return None


# JSON strings (skipped whole) and numbers, for integral_numbers.
_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?')
_FLOATISH = re.compile(rb"\d[.eE]")


def _integral(match: re.Match[bytes]) -> bytes:
    token = match.group(0)
    if token[:1] == b'"' or not _FLOATISH.search(token):
        return token
    try:
        number = Decimal(token.decode())
    except InvalidOperation:
        return token
    if INT_MIN <= number <= INT_MAX and number == number.to_integral_value():
        return str(int(number)).encode()
    return token


def integral_numbers(scope: dict[str, Any], body: bytes) -> bytes:
    """A JSON body with every integral number written as an integer (`166.0`, `1e3` ->
    `166`, `1000`): JSON and JSON Schema do not tell them apart, while the routes' strict
    integer fields (money, points, ids) would refuse the first form. Fractions, strings and
    booleans stay as they are (and stay refused where an integer is wanted)."""
    if content_type(scope) == "application/x-www-form-urlencoded" or not _FLOATISH.search(body):
        return body
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        return body  # not JSON: the route's own parsing answers 400
    return _JSON_TOKEN.sub(_integral, body)


def check_body(scope: dict[str, Any], body: bytes) -> DomainError | None:
    if content_type(scope) == "application/x-www-form-urlencoded":
        return check_form(body)
    return check_json(body)


async def refuse_before_body(scope: dict[str, Any]) -> DomainError | None:
    """A refusal that needs no body (the API key), given before the body is read."""
    hook = BEFORE_BODY[0] if BEFORE_BODY else None
    return await hook(scope) if hook is not None else None


# Set by the API's assembly: the credentials check run before a body is read.
BEFORE_BODY: list[Any] = []
