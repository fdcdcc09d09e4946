"""Pure rules of r_keeper's FarCards HTTP protocol: reading its XML, writing our answers.

r_keeper 7 asks an outside card system about a card through FarCards; the HTTP module of
FarCards (ExtDllHTTP.dll, FarCards 6.04+) turns the two required calls into POSTs of UTF-8
XML to the processing server the dealer names in ExtDllHttp.ini:

- GetCardInfoEx: ``<ROOT><QRY Card=".." Restaurant=".." UnitNo=".."><INPBUF>`` the check
  being served ``</INPBUF></QRY></ROOT>``; the answer is the card-info structure of
  FarCards (holder, account, bonus and discount numbers, the amounts on the card's
  accounts in kopecks, texts for the screen and the slip) as attributes of
  ``<ROOT><GetCardInfoEx Result="0" .../></ROOT>``; Result 1 = no such card.
- TransactionsEx: ``<ROOT><Transactions><TransactionsEx Card Kind Summa Restaurant RKDate
  RKUnit RKCheck .../>...</Transactions><INPBUF>`` the closed check ``</INPBUF></ROOT>``;
  the answer is ``<ROOT><TransactionsEx Result="0"/></ROOT>``. Kind: 0 payment from the
  card's account (negative = paid, positive = payment cancelled), 1 discount, 2 bonus
  given by r_keeper, 3 the guest's own money (positive = paid, negative = check
  cancelled). Sums are integers in kopecks.

Element names are compared without regard to case (the published examples write INPBUF,
some senders InpBuf). Nothing here touches the database.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

MAX_BODY = 1_000_000  # a check with hundreds of lines is far below this
CARD_RE = re.compile(r"^\d{1,19}$")  # FarCards passes the card as a 64-bit integer
DATE_RE = re.compile(r"^[0-9T:.\- ]{1,32}$")
KINDS = {0: "payment", 1: "discount", 2: "bonus", 3: "spending"}
HOLDER_MAX = 39  # the holder field of FarCards' card structure: 40 bytes with the terminator
TEXT_MAX = 255  # its text fields (block reason, screen and slip texts)


class ProtocolError(Exception):
    """A request FarCards' description does not allow: answered with Result 1."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class CardQuery:
    card: str
    restaurant: int | None
    unit: int | None


@dataclass(frozen=True)
class Transaction:
    card: str
    kind: int
    summa: int  # kopecks, signed as FarCards signs them (see the module doc)
    restaurant: int
    rk_date: str
    unit: int
    check: int

    @property
    def check_key(self) -> str:
        """One r_keeper check: restaurant, cash date, till and check number."""
        return f"{self.restaurant}:{self.rk_date}:{self.unit}:{self.check}"


@dataclass(frozen=True)
class Movement:
    """What one check did with one card, summed over its transactions."""

    card: str
    check_key: str
    spent: int  # the guest's own money (kind 3), kopecks; negative when cancelled
    paid_from_card: int  # paid from the card's account (kind 0, sign flipped); negative when cancelled
    discount: int = 0  # the card's discount r_keeper gave (kind 1, sign flipped); negative when cancelled

    @property
    def is_sale(self) -> bool:
        return self.spent >= 0 and self.paid_from_card >= 0 and (self.spent + self.paid_from_card) > 0

    @property
    def is_storno(self) -> bool:
        return self.spent <= 0 and self.paid_from_card <= 0 and (self.spent + self.paid_from_card) < 0


@dataclass(frozen=True)
class Batch:
    transactions: list[Transaction]
    check_guid: str | None  # CHECKDATA checkguid of the check in INPBUF, when sent


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].casefold()


def parse(body: bytes) -> ET.Element:
    """The XML root, or ProtocolError. No DTDs or entities: FarCards never sends them and
    refusing them keeps entity expansion out of the parser."""
    if not body or not body.strip():
        raise ProtocolError("malformed_xml", "the body is empty; FarCards sends an XML document")
    if len(body) > MAX_BODY:
        raise ProtocolError("too_large", f"the body is larger than {MAX_BODY} bytes")
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise ProtocolError("malformed_xml", "document type declarations are not accepted")
    try:
        return ET.fromstring(body)
    except ET.ParseError as exc:
        raise ProtocolError("malformed_xml", f"the body is not well-formed XML ({exc})") from None


def child(elem: ET.Element, name: str) -> ET.Element | None:
    want = name.casefold()
    return next((c for c in elem if _local(c.tag) == want), None)


def children(elem: ET.Element, name: str) -> list[ET.Element]:
    want = name.casefold()
    return [c for c in elem if _local(c.tag) == want]


def _attr(elem: ET.Element, name: str) -> str | None:
    want = name.casefold()
    return next((v for k, v in elem.attrib.items() if k.casefold() == want), None)


def _int(
    elem: ET.Element, name: str, *, required: bool = True, low: int = 0, high: int = 2**63 - 1
) -> int | None:
    raw = _attr(elem, name)
    if raw is None or raw.strip() == "":
        if required:
            raise ProtocolError("validation_error", f"{_local(elem.tag).upper()} has no {name}")
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise ProtocolError("validation_error", f"{name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise ProtocolError("validation_error", f"{name}={value} is out of range")
    return value


def _card(elem: ET.Element) -> str:
    raw = (_attr(elem, "Card") or "").strip()
    if not CARD_RE.match(raw):
        raise ProtocolError("validation_error", f"Card={raw!r} is not a card number (digits only)")
    return raw.lstrip("0") or "0"


def _check_guid(inpbuf: ET.Element | None) -> str | None:
    if inpbuf is None:
        return None
    for elem in inpbuf.iter():
        if _local(elem.tag) == "checkdata":
            guid = (_attr(elem, "checkguid") or "").strip()
            return guid[:64] or None
    return None


def parse_card_query(body: bytes) -> CardQuery:
    root = parse(body)
    if _local(root.tag) != "root":
        raise ProtocolError("validation_error", "the document element must be ROOT")
    qry = child(root, "QRY")
    if qry is None:
        raise ProtocolError("validation_error", "ROOT has no QRY element")
    return CardQuery(
        card=_card(qry),
        restaurant=_int(qry, "Restaurant", required=False),
        unit=_int(qry, "UnitNo", required=False),
    )


def parse_transactions(body: bytes) -> Batch:
    root = parse(body)
    if _local(root.tag) != "root":
        raise ProtocolError("validation_error", "the document element must be ROOT")
    holder = child(root, "Transactions")
    items = children(holder, "TransactionsEx") if holder is not None else []
    if not items:
        raise ProtocolError("validation_error", "ROOT has no Transactions/TransactionsEx elements")
    out = []
    for item in items:
        kind = _int(item, "Kind", high=255)
        assert kind is not None
        if kind not in KINDS:
            raise ProtocolError("validation_error", f"Kind={kind} is none of 0 (payment), 1, 2, 3 (spending)")
        rk_date = (_attr(item, "RKDate") or "").strip()
        if not DATE_RE.match(rk_date):
            raise ProtocolError("validation_error", f"RKDate={rk_date!r} is not a cash date")
        summa = _int(item, "Summa", low=-(10**13), high=10**13)
        restaurant = _int(item, "Restaurant", high=2**32)
        unit = _int(item, "RKUnit", high=2**32)
        check = _int(item, "RKCheck", high=2**32)
        assert summa is not None and restaurant is not None and unit is not None and check is not None
        out.append(Transaction(_card(item), kind, summa, restaurant, rk_date, unit, check))
    inpbuf = child(root, "INPBUF")
    return Batch(out, _check_guid(inpbuf))


def movements(batch: Batch) -> list[Movement]:
    """Per card and check: the guest's own money, what the card's account paid and the
    card's discount r_keeper gave (a discount programme books the check before it).
    r_keeper's own bonuses (kind 2) are its arithmetic, not ours: our programme accrues
    by its own rules."""
    sums: dict[tuple[str, str], list[int]] = {}
    for tx in batch.transactions:
        entry = sums.setdefault((tx.card, tx.check_key), [0, 0, 0])
        if tx.kind == 3:
            entry[0] += tx.summa
        elif tx.kind == 0:
            entry[1] -= tx.summa
        elif tx.kind == 1:
            entry[2] -= tx.summa
    return [Movement(card, key, *sums_) for (card, key), sums_ in sums.items()]


def mask_holder(name: str | None, fallback: str) -> str:
    """The holder as the till shows it: the first name and the initial of the next word
    ("Анна К."), never the whole name; `fallback` when there is none."""
    words = (name or "").split()
    if not words:
        return fallback[:HOLDER_MAX]
    shown = words[0] + (f" {words[1][0]}." if len(words) > 1 else "")
    return shown[:HOLDER_MAX]


@dataclass(frozen=True)
class CardAnswer:
    holder: str
    person_id: int
    account: int
    blocked: bool = False
    why_blocked: str = ""
    bonus: int = 0  # r_keeper's bonus number for the guest's tier
    discount: int = 0  # r_keeper's discount number for the guest's tier
    summa: int = 0  # kopecks the card's account may pay
    info: str = ""  # the tier, for the card's extra info
    screen: str = ""  # shown on the till's screen
    slip: str = ""  # printed on the slip


def _doc(inner: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<ROOT>{inner}</ROOT>\n'.encode()


def card_answer(a: CardAnswer) -> bytes:
    attrs = {
        "Result": 0,
        "Deleted": 0,
        "Grab": 0,
        "StopDate": 0,
        "Holy": 0,
        "Manager": 0,
        "Locked": 1 if a.blocked else 0,
        "WhyLock": a.why_blocked[:TEXT_MAX],
        "Holder": a.holder[:HOLDER_MAX],
        "PersonID": a.person_id,
        "Account": a.account,
        "Unpay": 0,
        "Bonus": a.bonus,
        "Discount": a.discount,
        "DiscLimit": 0,
        "Summa": max(0, a.summa),
        **{f"Sum{i}": 0 for i in range(2, 9)},
        "DopInfo": a.info[:TEXT_MAX],
        "ShowInfo": a.screen[:TEXT_MAX],
        "ScrMessage": a.slip[:TEXT_MAX],
    }
    body = " ".join(f"{k}={quoteattr(str(v))}" for k, v in attrs.items())
    return _doc(f"<GetCardInfoEx {body}/>")


def transactions_answer() -> bytes:
    return _doc('<TransactionsEx Result="0"/>')


def error_answer(function: str, code: str, message: str) -> bytes:
    """Result 1 (FarCards: the card is unknown, or the call failed) with our stable code
    and a sentence for the dealer's log."""
    text = message.replace("\n", " ")[:TEXT_MAX]
    return _doc(f'<{function} Result="1" ErrorCode={quoteattr(code)} ErrorText={quoteattr(text)}/>')
