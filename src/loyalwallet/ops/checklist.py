"""The owner's setup checklist: what a café still has to do before its first guest, each
item with the page that does it and, in plain words, what is missing.

The wallet and SMS items are the doctor's own checks (`ops.doctor`), run for this merchant
without network calls, so the checklist and `loyalwallet doctor` state the same facts.
The rest are read from the parts that own them. Messages are English msgids with
%-parameters; pages translate them (web/locale/ru/invite.po).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalwallet.config import get_settings
from loyalwallet.enrollment import invite
from loyalwallet.fraud.service import telegram_view
from loyalwallet.merchants.models import Staff
from loyalwallet.merchants.service import get_merchant, list_locations
from loyalwallet.ops import doctor
from loyalwallet.programs.design import CardDesign, Colours, parse_design
from loyalwallet.programs.models import Program
from loyalwallet.programs.service import list_programs

# Where each item is done. The wallet and SMS pages are the owner's settings pages.
WALLETS_PAGE = "/admin/wallets"
SMS_PAGE = "/admin/sms"
TELEGRAM_PAGE = "/admin/alerts#telegram"


@dataclass(frozen=True)
class Item:
    key: str  # stable: program, design, location, barista, apple, google, sms, telegram, printed
    title: str  # msgid
    done: bool
    missing: str = ""  # msgid of what is missing (with %(name)s parameters), "" when done
    params: dict[str, Any] = field(default_factory=dict)
    link: str = ""
    role: str = "manager"  # the lowest role that can open the link


def _findings(check: doctor.Check, merchant_id: int) -> list[doctor.Finding]:
    ctx = doctor.Context(get_settings(), database_ok=True, merchant_id=merchant_id, network=False)
    return doctor.run([check], ctx)


def _designed(design: CardDesign) -> bool:
    """The card has the café's own look: a logo, an icon, a name on it or its colours."""
    images = design.images
    return bool(images.logo or images.icon or design.logo_text) or design.colours != Colours()


def _programs(session: Session, merchant_id: int) -> list[Item]:
    programs = list_programs(session, merchant_id)  # the active ones
    if not programs:
        return [
            Item(
                "program",
                "Create a programme",
                False,
                "No programme yet: choose how guests are rewarded (points, stamps or a discount).",
                link="/admin/programs#new-program",
            ),
            Item(
                "design",
                "Design the card",
                False,
                "Create a programme first, then give its card your logo and colours.",
                link="/admin/programs#new-program",
            ),
        ]
    first: Program = programs[0]
    undesigned = [p for p in programs if not _designed(_design(p))]
    return [
        Item("program", "Create a programme", True, link=f"/admin/programs/{first.id}"),
        Item(
            "design",
            "Design the card",
            not undesigned,
            "The card of «%(name)s» has the standard colours and no logo." if undesigned else "",
            {"name": undesigned[0].name} if undesigned else {},
            link=f"/admin/programs/{(undesigned or programs)[0].id}/design",
        ),
    ]


def _design(program: Program) -> CardDesign:
    try:
        return parse_design(program.design)
    except Exception:  # a design stored before validation tightened counts as not designed
        return CardDesign()


def _location(session: Session, merchant_id: int) -> Item:
    done = bool(list_locations(session, merchant_id, active_only=True))
    missing = (
        "" if done else "No location yet: add your café so cashiers can choose it and the card shows it."
    )
    return Item("location", "Add your location", done, missing, link="/admin/locations", role="owner")


def _barista(session: Session, merchant_id: int) -> Item:
    count = session.scalar(
        select(func.count())
        .select_from(Staff)
        .where(Staff.merchant_id == merchant_id, Staff.role == "cashier", Staff.active.is_(True))
    )
    done = bool(count)
    missing = "" if done else "No barista login yet: add a cashier to ring up purchases at the counter."
    return Item("barista", "Add a barista", done, missing, link="/admin/staff", role="owner")


APPLE_MISSING = {
    "missing": "No Apple certificate: iPhone guests get the web card instead of Apple Wallet.",
    "development": "Only a self-signed development certificate: real iPhones refuse its passes.",
    "expired": "The Apple certificate has expired: passes cannot be signed. Upload a new one.",
    "expiring": "The Apple certificate expires in %(days)s days: renew it in time.",
    "no_wwdr_g4": "Apple's WWDR G4 intermediate certificate is missing: upload the certificate again with it.",
}
GOOGLE_MISSING = {
    "missing": "No Google Wallet issuer: Android guests get the web card instead of Google Wallet.",
    "development": "Only a development key: Google refuses its save links.",
}


def _from_doctor(
    key: str,
    title: str,
    check: doctor.Check,
    merchant_id: int,
    messages: dict[str, str],
    link: str,
) -> Item:
    """Done when each of the doctor's findings for this merchant is ok; else the first
    that is not, in the owner's words."""
    findings = [f for f in _findings(check, merchant_id) if f.level != "skip"]
    bad = next((f for f in findings if f.level != "ok"), None)
    if findings and bad is None:
        return Item(key, title, True, link=link, role="owner")
    if bad is None:
        return Item(key, title, False, messages["missing"], link=link, role="owner")
    message = messages.get(bad.reason, "%(detail)s")
    return Item(key, title, False, message, {"detail": bad.detail, **bad.data}, link=link, role="owner")


def _telegram(session: Session, merchant_id: int) -> Item:
    view = telegram_view(get_merchant(session, merchant_id))
    missing = ""
    if not view["has_token"]:
        missing = "No Telegram bot yet: alerts about suspicious operations reach nobody."
    elif not view["chat_id"]:
        missing = "Telegram is not linked to your chat: alerts about suspicious operations reach nobody."
    elif not view["alerts"]:
        missing = "Telegram alerts are switched off."
    return Item("telegram", "Get alerts in Telegram", not missing, missing, link=TELEGRAM_PAGE, role="owner")


def _printed(session: Session, merchant_id: int) -> Item:
    done = invite.was_printed(session, merchant_id)
    missing = "" if done else "The counter QR code has not been downloaded yet: print the table tent."
    return Item("printed", "Print the counter QR code", done, missing, link="/admin/invite")


def items(session: Session, merchant_id: int) -> list[Item]:
    """Every item, in the order a café does them."""
    return [
        *_programs(session, merchant_id),
        _location(session, merchant_id),
        _barista(session, merchant_id),
        _from_doctor(
            "apple",
            "Connect Apple Wallet",
            doctor.apple_certificate,
            merchant_id,
            APPLE_MISSING,
            WALLETS_PAGE,
        ),
        _from_doctor(
            "google", "Connect Google Wallet", doctor.google, merchant_id, GOOGLE_MISSING, WALLETS_PAGE
        ),
        _from_doctor(
            "sms",
            "Send SMS codes to guests",
            doctor.sms,
            merchant_id,
            {
                "console": "SMS codes are only written to the server's log: real guests never get them.",
                "missing": "No SMS provider: guests cannot confirm their phone.",
            },
            SMS_PAGE,
        ),
        _telegram(session, merchant_id),
        _printed(session, merchant_id),
    ]
