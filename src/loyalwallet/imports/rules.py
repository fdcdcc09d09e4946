"""Pure rules of the import: card code ranges and reading a customer CSV.

No database here: the service checks what only the database knows (phones and codes
already taken) and writes.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from loyalwallet.cards.codes import CODE_RE, normalise
from loyalwallet.customers.phones import to_e164
from loyalwallet.errors import DomainError, Explained

# --- card code ranges -------------------------------------------------------------------


@dataclass(frozen=True)
class CodeRange:
    prefix: str
    length: int
    first: str | None = None
    last: str | None = None

    def matches(self, code: str) -> bool:
        if len(code) != self.length or not code.startswith(self.prefix):
            return False
        if self.first is not None or self.last is not None:
            if not code.isdigit():
                return False
            number = int(code)
            if self.first is not None and number < int(self.first):
                return False
            if self.last is not None and number > int(self.last):
                return False
        return True


def validate_range(prefix: str, length: int, first: str | None, last: str | None) -> CodeRange:
    prefix = prefix.strip()
    if prefix and not re.fullmatch(r"[A-Za-z0-9]{1,31}", prefix):
        raise DomainError("validation_error", "a prefix is letters and digits", field="prefix")
    if not 4 <= length <= 32 or len(prefix) >= length:
        raise DomainError("validation_error", "the length is 4-32 and longer than the prefix", field="length")
    for name, value in (("first", first), ("last", last)):
        if value is not None and (
            not value.isdigit() or len(value) != length or not value.startswith(prefix)
        ):
            raise Explained(
                "validation_error",
                "{name} must be a number of {length} digits starting with the prefix",
                name=name,
                length=length,
                extra={"field": name},
            )
    if first is not None and last is not None and int(first) > int(last):
        raise DomainError("validation_error", "first must not be after last", field="first")
    return CodeRange(prefix.upper(), length, first, last)


# --- reading the CSV --------------------------------------------------------------------

# Column names as exported by common systems, in English and Russian.
ALIASES = {
    "phone": ("phone", "phone_number", "mobile", "телефон", "номер телефона", "мобильный"),
    "name": ("name", "full_name", "fio", "имя", "фио", "клиент", "покупатель"),
    "birthday": ("birthday", "birth_date", "date_of_birth", "dob", "дата рождения", "день рождения"),
    "balance": ("balance", "points", "bonus", "bonuses", "баланс", "бонусы", "баллы"),
    "card": ("card", "card_number", "card_code", "code", "номер карты", "карта", "код карты"),
}
MAX_BALANCE = 10**9


@dataclass
class Row:
    line: int  # in the file, the header being line 1
    phone: str | None = None
    name: str | None = None
    birthday: dt.date | None = None
    balance: int = 0
    card: str | None = None
    errors: list[str] = field(default_factory=list)
    status: str = "new"  # new | exists | error

    @property
    def ok(self) -> bool:
        return not self.errors


def _columns(header: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for i, raw in enumerate(header):
        key = raw.strip().strip("\ufeff").casefold()
        for column, names in ALIASES.items():
            if key in names and column not in found:
                found[column] = i
    if "phone" not in found:
        raise DomainError("validation_error", "the file has no phone column (phone / телефон)")
    return found


def parse_birthday(text: str) -> dt.date:
    for fmt in ("%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y", "%d.%m.%y"):
        try:
            day = dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
        if not dt.date(1900, 1, 1) <= day <= dt.date.today():
            raise ValueError("the birthday is not between 1900 and today")
        return day
    raise ValueError(f"cannot read the date {text!r} (use 1990-05-17 or 17.05.1990)")


def parse_balance(text: str) -> int:
    cleaned = text.replace(" ", "").replace("\u00a0", "")
    if cleaned.endswith((".0", ",0", ".00", ",00")):
        cleaned = cleaned.rsplit(".", 1)[0].rsplit(",", 1)[0]
    if not cleaned.isdigit():
        raise ValueError(f"the balance {text!r} is not a whole number of points")
    value = int(cleaned)
    if value > MAX_BALANCE:
        raise ValueError("the balance is too large")
    return value


def sniff_dialect(sample: str) -> type[csv.Dialect] | csv.Dialect:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        return csv.excel


def read_rows(text: str, region: str = "RU") -> list[Row]:
    """Every data row of the file, each with its errors (if any). Duplicated phones and
    card numbers within the file are errors on the second occurrence."""
    reader = csv.reader(io.StringIO(text), sniff_dialect(text[:4096]))
    try:
        header = next(reader)
    except StopIteration:
        raise DomainError("validation_error", "the file is empty") from None
    cols = _columns(header)
    rows: list[Row] = []
    phones: dict[str, int] = {}
    cards: dict[str, int] = {}
    for number, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        row = Row(line=number)

        def cell(column: str, values: list[str] = values) -> str:
            i = cols.get(column)
            return values[i].strip() if i is not None and i < len(values) else ""

        try:
            row.phone = to_e164(cell("phone"), region)
        except DomainError:
            row.errors.append(f"phone {cell('phone')!r} is not a valid phone number")
        row.name = cell("name")[:200] or None
        if cell("birthday"):
            try:
                row.birthday = parse_birthday(cell("birthday"))
            except ValueError as exc:
                row.errors.append(str(exc))
        if cell("balance"):
            try:
                row.balance = parse_balance(cell("balance"))
            except ValueError as exc:
                row.errors.append(str(exc))
        if cell("card"):
            code = normalise(cell("card")).upper()
            if not CODE_RE.match(code):
                row.errors.append(f"card number {cell('card')!r} is not 4-32 letters and digits")
            else:
                row.card = code
        if row.phone and row.phone in phones:
            row.errors.append(f"the same phone as line {phones[row.phone]}")
        elif row.phone:
            phones[row.phone] = number
        if row.card and row.card in cards:
            row.errors.append(f"the same card number as line {cards[row.card]}")
        elif row.card:
            cards[row.card] = number
        if row.errors:
            row.status = "error"
        rows.append(row)
    return rows


def check_code(code: str, own: Iterable[CodeRange], others: Iterable[CodeRange]) -> str | None:
    """Why a plastic number cannot join this program, or None when it can: it must fall in
    one of the program's ranges (when the program has any) and in no other program's."""
    own = list(own)
    if any(r.matches(code) for r in others) and not any(r.matches(code) for r in own):
        return f"card number {code} belongs to another program's range"
    if own and not any(r.matches(code) for r in own):
        return f"card number {code} is outside the program's card code ranges"
    return None
