"""The development provider: prints the SMS to the server's console and keeps the last
few in memory (the demo's verify page and the tests read them from there)."""

from __future__ import annotations

import collections
import itertools
import logging
import threading
from dataclasses import dataclass

from loyalwallet.enrollment.sms.base import SmsResult, sms_parts

log = logging.getLogger("loyalwallet.sms")


@dataclass(frozen=True)
class SentSms:
    id: str
    phone: str
    text: str
    sender: str | None


SENT: collections.deque[SentSms] = collections.deque(maxlen=200)
_ids = itertools.count(1)
_lock = threading.Lock()


class ConsoleProvider:
    name = "console"

    def send(self, phone: str, text: str, *, sender: str | None = None) -> SmsResult:
        with _lock:
            sms = SentSms(f"console-{next(_ids)}", phone, text, sender)
            SENT.append(sms)
        log.warning("SMS (console provider, not sent) to %s: %s", phone, text.replace("\n", " | "))
        return SmsResult(self.name, sms.id)

    def cost(self, phones: list[str], text: str) -> dict[str, tuple[int, int] | None]:
        """Nothing is sent, so nothing is paid: the parts, at no cost."""
        return {phone: (sms_parts(text), 0) for phone in phones}


def last_to(phone: str) -> SentSms | None:
    """The newest console SMS to this number."""
    with _lock:
        for sms in reversed(SENT):
            if sms.phone == phone:
                return sms
    return None
