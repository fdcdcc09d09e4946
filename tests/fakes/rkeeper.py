"""A fake r_keeper 7 with FarCards' HTTP module (ExtDllHTTP.dll): the client side.

It sends what the published description of FarCards' HTTP protocol shapes (r_keeper
knowledge base, "Описание HTTP протокола для FarCards"): POSTs of UTF-8 XML to
Address + GetCardInfoEx / TransactionsEx from ExtDllHttp.ini, the card call as
``ROOT/QRY[@Card,@Restaurant,@UnitNo]/INPBUF/CHECK``, the transactions of a closed check
as ``ROOT/Transactions/TransactionsEx[@...]`` with the check in ``ROOT/INPBUF``.

Every answer is checked against the field list below, written from FarCards' card-info
and transaction structures (types and sizes of the DLL interface it mirrors): what does
not fit is appended to `invalid`, and the tests assert it stays empty.
"""

from __future__ import annotations

import itertools
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import quoteattr

import httpx

FLAG = {"0", "1"}
U16, U32, I64 = (0, 2**16 - 1), (0, 2**32 - 1), (-(2**63), 2**63 - 1)

# GetCardInfoEx's answer when Result="0": attribute -> (kind, limit). "int" limits are
# (low, high); "text" limits are bytes in r_keeper's single-byte code page (cp1251).
CARD_INFO: dict[str, tuple[str, Any]] = {
    "Deleted": ("flag", None),  # the card existed but was deleted
    "Grab": ("flag", None),  # the card must be taken from the guest
    "StopDate": ("flag", None),  # expired
    "Holy": ("flag", None),  # 1 = not valid now
    "Manager": ("flag", None),  # a manager must confirm
    "Locked": ("flag", None),  # blocked
    "WhyLock": ("text", 255),  # why blocked, shown at the till
    "Holder": ("text", 39),  # the holder's name, 40-byte field
    "PersonID": ("int", I64),
    "Account": ("int", U32),
    "Unpay": ("int", U32),
    "Bonus": ("int", U16),  # r_keeper's bonus number
    "Discount": ("int", U16),  # r_keeper's discount number
    "DiscLimit": ("int", I64),  # kopecks
    "Summa": ("int", I64),  # kopecks on account 1 (what the card may pay)
    **{f"Sum{i}": ("int", I64) for i in range(2, 9)},
    "DopInfo": ("text", 255),
    "ShowInfo": ("text", 255),  # the till's screen
    "ScrMessage": ("text", 255),  # the slip
}
# Result="1" may carry these (the server's own explanation; FarCards ignores unknown ones).
ERROR_ATTRS = {"Result", "ErrorCode", "ErrorText"}


@dataclass
class Answer:
    status: int
    function: str
    attrs: dict[str, str]

    @property
    def result(self) -> int:
        return int(self.attrs.get("Result", "-1"))

    def int(self, name: str) -> int:
        return int(self.attrs[name])


@dataclass
class FakeRkeeper:
    """One r_keeper restaurant whose FarCards talks HTTP to `address` (a path on `client`)."""

    client: Any  # an httpx-like client (the app's TestClient)
    address: str
    restaurant: int = 199990001
    unit: int = 2
    invalid: list[str] = field(default_factory=list)
    _checks: itertools.count = field(default_factory=lambda: itertools.count(1001))

    # --- requests, as the description shapes them ------------------------------------------

    def _check_xml(
        self, check_no: int, guid: str, lines: list[tuple[str, int]], deleted: bool = False
    ) -> str:
        items = "".join(
            f'<LINE id="{i}" code="{100 + i}" name={quoteattr(name)} uni="{i}" type="dish" '
            f'price="{price / 100:.2f}" quantity="1" sum="{price / 100:.2f}"/>'
            for i, (name, price) in enumerate(lines, 1)
        )
        delattrs = f' delprintnum="{check_no}"' if deleted else ""
        return (
            f'<CHECK stationcode="{self.unit}" restaurantcode="{self.restaurant}" '
            'cashservername="MIDSERV" generateddatetime="2026-12-07T12:00:00" chmode="0" '
            'locale="1049" shiftdate="2026-12-07" shiftnum="5">'
            f'<CHECKDATA checknum="{check_no}" printnum="{check_no}"{delattrs} '
            f'orderguid="{{{uuid.uuid4()}}}" checkguid="{guid}" tablename="7" guests="1">'
            f'<CHECKLINES count="{len(lines)}">{items}</CHECKLINES></CHECKDATA></CHECK>'
        )

    def card_info(self, card: str, lines: list[tuple[str, int]] | None = None) -> Answer:
        inpbuf = ""
        if lines:
            inpbuf = f"<INPBUF>{self._check_xml(0, '{' + str(uuid.uuid4()) + '}', lines)}</INPBUF>"
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<ROOT>\n'
            f'<QRY Card="{card}" Restaurant="{self.restaurant}" UnitNo="{self.unit}">{inpbuf}</QRY>\n</ROOT>'
        )
        return self.post("GetCardInfoEx", body.encode())

    def transactions(
        self,
        card: str,
        movements: list[tuple[int, int]],
        *,
        check_no: int,
        guid: str,
        account: int = 0,
        lines: list[tuple[str, int]] | None = None,
        deleted: bool = False,
    ) -> Answer:
        """`movements`: (Kind, Summa in kopecks, signed as FarCards signs them)."""
        items = "".join(
            f'<TransactionsEx Card="{card}" PersonID="0" Account="{account}" Kind="{kind}" '
            f'Summa="{summa}" Restaurant="{self.restaurant}" RKDate="2026-12-07T00:00:00" '
            f'RKUnit="{self.unit}" RKCheck="{check_no}" VatSumA="0" VatPrcA="0"/>'
            for kind, summa in movements
        )
        check = self._check_xml(check_no, guid, lines or [("Капучино", 20000)], deleted)
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<ROOT>'
            f"<Transactions>{items}</Transactions><INPBUF>{check}</INPBUF></ROOT>"
        )
        return self.post("TransactionsEx", body.encode())

    def close_check(
        self,
        card: str,
        spent: int,
        *,
        paid_from_card: int = 0,
        discount: int = 0,
        check_no: int | None = None,
        guid: str | None = None,
    ) -> tuple[Answer, int, str]:
        """A check closed at the till: the guest's own money (kind 3) and what the card's
        account paid (kind 0, negative). Returns the answer and the check's number and GUID
        (to send it again or cancel it)."""
        check_no = check_no or next(self._checks)
        guid = guid or "{" + str(uuid.uuid4()).upper() + "}"
        moves = [(3, spent)] + ([(0, -paid_from_card)] if paid_from_card else [])
        moves += [(1, -discount)] if discount else []  # the card's discount r_keeper gave
        total = spent + paid_from_card
        return (
            self.transactions(card, moves, check_no=check_no, guid=guid, lines=[("Обед", total)]),
            check_no,
            guid,
        )

    def cancel_check(
        self, card: str, spent: int, *, paid_from_card: int = 0, check_no: int, guid: str
    ) -> Answer:
        """The check deleted (storno): the same check, the movements with their signs flipped."""
        moves = [(3, -spent)] + ([(0, paid_from_card)] if paid_from_card else [])
        return self.transactions(card, moves, check_no=check_no, guid=guid, deleted=True)

    # --- the wire, and the check of every answer --------------------------------------------

    def post(self, function: str, body: bytes, address: str | None = None) -> Answer:
        path = {"GetCardInfoEx": "getcardinfoex", "TransactionsEx": "transactionsex"}[function]
        r: httpx.Response = self.client.post(
            f"{address or self.address}/{path}",
            content=body,
            headers={"Content-Type": "text/xml; charset=utf-8"},
        )
        return self._check(function, r)

    def _bad(self, message: str) -> None:
        self.invalid.append(message)

    def _check(self, function: str, r: httpx.Response) -> Answer:
        if r.status_code >= 500:
            self._bad(f"{function}: HTTP {r.status_code}")
        if not r.headers.get("content-type", "").startswith(("application/xml", "text/xml")):
            self._bad(f"{function}: content-type {r.headers.get('content-type')!r} is not XML")
        if not r.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>'):
            self._bad(f"{function}: the answer does not declare UTF-8")
        try:
            root = ET.fromstring(r.content)
        except ET.ParseError as exc:
            self._bad(f"{function}: not XML ({exc})")
            return Answer(r.status_code, function, {})
        kids = list(root)
        if root.tag != "ROOT" or len(kids) != 1 or kids[0].tag != function:
            self._bad(f"{function}: expected ROOT/{function}, got {root.tag}/{[k.tag for k in kids]}")
            return Answer(r.status_code, function, {})
        attrs = dict(kids[0].attrib)
        result = attrs.get("Result")
        if result not in {"0", "1"}:
            self._bad(f"{function}: Result={result!r}")
        elif result == "1":
            extra = set(attrs) - ERROR_ATTRS
            if extra:
                self._bad(f"{function}: unexpected attributes with Result=1: {sorted(extra)}")
        elif function == "GetCardInfoEx":
            self._check_card(attrs)
        elif set(attrs) != {"Result"}:
            self._bad(f"TransactionsEx: unexpected attributes {sorted(set(attrs) - {'Result'})}")
        return Answer(r.status_code, function, attrs)

    def _check_card(self, attrs: dict[str, str]) -> None:
        missing = set(CARD_INFO) - set(attrs)
        extra = set(attrs) - set(CARD_INFO) - {"Result"}
        if missing or extra:
            self._bad(f"GetCardInfoEx: missing {sorted(missing)}, unknown {sorted(extra)}")
        for name, (kind, limit) in CARD_INFO.items():
            value = attrs.get(name)
            if value is None:
                continue
            if kind == "flag" and value not in FLAG:
                self._bad(f"GetCardInfoEx: {name}={value!r} is not 0 or 1")
            elif kind == "int":
                try:
                    number = int(value)
                except ValueError:
                    self._bad(f"GetCardInfoEx: {name}={value!r} is not an integer")
                    continue
                if not limit[0] <= number <= limit[1]:
                    self._bad(f"GetCardInfoEx: {name}={number} is out of range {limit}")
            elif kind == "text":
                size = len(value.encode("cp1251", errors="replace"))
                if size > limit:
                    self._bad(f"GetCardInfoEx: {name} is {size} bytes, the field holds {limit}")
