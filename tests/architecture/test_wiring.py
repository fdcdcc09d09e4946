"""The composition root names the functions it calls (`wiring.Ref`): every name must
import, and the topics it lists must be the ones their producers write."""

from __future__ import annotations

import subprocess
import sys

from loyalwallet import wiring
from loyalwallet.enrollment import sms
from loyalwallet.fraud import service as fraud
from loyalwallet.messaging import campaign_email, campaign_sms, gift_email
from loyalwallet.messaging import service as messaging
from loyalwallet.outbox.handlers import Periodic
from loyalwallet.tgcard import campaigns as tgcard_campaigns
from loyalwallet.tgcard import service as tgcard
from loyalwallet.wallet.google import gifts as google_gifts
from loyalwallet.webhooks import service as webhooks


def _refs() -> list[wiring.Ref]:
    found: list[wiring.Ref] = []
    for value in vars(wiring).values():
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
        for item in items:
            if isinstance(item, Periodic):
                found += [x for x in (item.seconds, item.run) if isinstance(x, wiring.Ref)]
            elif isinstance(item, tuple):
                found += [x for x in item if isinstance(x, wiring.Ref)]
            elif isinstance(item, wiring.Ref):
                found.append(item)
    return found


def test_every_named_function_imports() -> None:
    refs = _refs()
    assert len(refs) > 40
    for ref in refs:
        assert callable(ref.resolve()), ref


def test_topics_are_the_producers_names() -> None:
    for topic in (
        sms.TOPIC,
        fraud.TELEGRAM_TOPIC,
        webhooks.TOPIC,
        messaging.EMAIL_TOPIC,
        campaign_email.TOPIC,
        campaign_sms.TOPIC,
        tgcard.UPDATE_TOPIC,
        tgcard.SEND_TOPIC,
        tgcard_campaigns.TOPIC,
        google_gifts.TOPIC,
        gift_email.TOPIC,
    ):
        assert topic in wiring.OUTBOX_HANDLERS, topic


def test_a_command_starts_without_every_part() -> None:
    """`loyalwallet --help` imports the command line, not the parts' services and pages."""
    probe = (
        "import sys, loyalwallet.cli; "
        "print(sorted(m for m in sys.modules if m.startswith('loyalwallet.') and "
        "m != 'loyalwallet.outbox.handlers' and m.rsplit('.', 1)[-1] in {'handlers', 'pages', 'api', 'public', 'triggers'}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
