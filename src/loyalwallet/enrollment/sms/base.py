"""What every SMS provider is: send one text to one E.164 number, or say why not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SmsResult:
    provider: str
    message_id: str | None = None


class SmsError(Exception):
    """Sending failed. `permanent`: retrying cannot help (a wrong number, a bad key,
    a provider's anti-spam limit); otherwise the outbox tries again later."""

    def __init__(
        self, message: str, *, permanent: bool = False, code: str | None = None, answer: str | None = None
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code
        self.answer = answer  # the provider's own words (code and text), when it answered


class SmsProvider(Protocol):
    name: str

    def send(self, phone: str, text: str, *, sender: str | None = None) -> SmsResult: ...

    def cost(self, phones: list[str], text: str) -> dict[str, tuple[int, int] | None]:
        """Per number: (parts, cost in minor units), None where the provider would refuse."""
        ...


def sms_parts(text: str) -> int:
    """How many SMS parts `text` takes (GSM 7-bit: 160, 153 when split; UCS-2: 70 / 67)."""
    single, multi = (160, 153) if all(ord(c) < 128 for c in text) else (70, 67)
    return 1 if len(text) <= single else -(-len(text) // multi)
