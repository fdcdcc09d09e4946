"""Join-form settings: what the form asks, the consent wordings (each stored once per
version), the form as the admin API shows it, and the embed snippets.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalwallet import db
from loyalwallet.enrollment import rules
from loyalwallet.enrollment.links import base_url, join_path
from loyalwallet.enrollment.models import ConsentText, JoinForm
from loyalwallet.merchants.actors import Actor
from loyalwallet.merchants.models import Merchant
from loyalwallet.merchants.service import audit
from loyalwallet.programs.models import Program
from loyalwallet.text import gettext_for


def form_settings(session: Session, program: Program) -> rules.FormSettings:
    row = session.get(JoinForm, program.id)
    return rules.parse_form_settings(row.settings if row else None)


def save_form_settings(
    session: Session, actor: Actor, program: Program, raw: dict[str, Any]
) -> rules.FormSettings:
    actor.require("manager")
    parsed = rules.parse_form_settings(raw)
    stored = parsed.model_dump(mode="json", exclude_none=True)
    row = session.get(JoinForm, program.id)
    if row is None:
        row = JoinForm(program_id=program.id, merchant_id=program.merchant_id, settings=stored)
        session.add(row)
    else:
        row.settings = stored
        row.updated_at = db.utcnow()
    for kind, wording in (
        ("personal_data", parsed.personal_data_text),
        ("marketing", parsed.marketing_text),
    ):
        if wording:
            remember_text(session, program.merchant_id, kind, wording)
    audit(session, actor, "join_form.update", "program", program.id, {"fields": len(parsed.fields)})
    return parsed


def consent_texts(settings: rules.FormSettings, merchant: Merchant, lang: str) -> tuple[str, str]:
    """The two consent wordings shown to a guest in `lang` (the merchant's, or ours)."""
    _ = gettext_for(lang)
    personal = settings.personal_data_text or _(
        "I agree that %(merchant)s processes my personal data (phone, name and what I entered above) "
        "to run my loyalty card, under Federal Law No. 152-FZ. I can withdraw this consent at any time."
    ) % {"merchant": merchant.name}
    marketing = settings.marketing_text or _(
        "I would like to receive offers and news from %(merchant)s by SMS and in my card."
    ) % {"merchant": merchant.name}
    return personal, marketing


def remember_text(session: Session, merchant_id: int, kind: str, wording: str) -> str:
    """Store a consent wording once and return its version."""
    version = rules.text_version(wording)
    exists = session.scalar(
        select(ConsentText.id).where(
            ConsentText.merchant_id == merchant_id, ConsentText.kind == kind, ConsentText.version == version
        )
    )
    if exists is None:
        session.add(ConsentText(merchant_id=merchant_id, kind=kind, version=version, text=wording))
        session.flush()
    return version


def form_view(session: Session, program: Program, settings: rules.FormSettings) -> dict[str, Any]:
    merchant = session.get(Merchant, program.merchant_id)
    assert merchant is not None
    out = settings.model_dump(mode="json")
    personal, marketing = consent_texts(settings, merchant, merchant.locale or "ru")
    out.update(
        program_id=program.id,
        personal_data_version=rules.text_version(personal),
        marketing_version=rules.text_version(marketing),
        join_url=base_url() + join_path(program.id),
        widget=widget_snippets(program.id, None),
    )
    return out


def widget_snippets(program_id: int, channel_slug: str | None) -> dict[str, str]:
    base = base_url()
    data_channel = f' data-channel="{channel_slug}"' if channel_slug else ""
    src = base + join_path(program_id, channel=channel_slug, embed="1")
    return {
        "script": (
            f'<script async src="{base}/static/enrollment/widget.js" '
            f'data-program="{program_id}"{data_channel}></script>'
        ),
        "iframe": (
            f'<iframe src="{src}" title="Loyalty card" loading="lazy" '
            f'style="width:100%;max-width:480px;height:760px;border:0"></iframe>'
        ),
    }
