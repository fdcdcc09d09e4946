"""A wallet's button only where that wallet works; the pass link without a certificate
answers a person with a page (in their language) that leads to the web card."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from enrollment_support import BONUS_RULES, join
from loyalwallet import db
from loyalwallet.wallet.apple import certs, credentials
from loyalwallet.wallet.apple.models import AppleCertificate
from loyalwallet.wallet.google.issuer import import_key
from loyalwallet.wallet.google.keys import development_key_file
from support import Shop, random_phone

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1"
)
ANDROID = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/124.0 Mobile Safari/537.36"
NO_WALLET = "data-no-wallet"


@contextmanager
def no_installation_certificate() -> Iterator[None]:
    """As on a fresh install: no certificate signs for every merchant (restored after)."""
    with db.transaction() as session:
        ids = list(
            session.scalars(
                select(AppleCertificate.id).where(
                    AppleCertificate.merchant_id.is_(None), AppleCertificate.active.is_(True)
                )
            )
        )
        session.execute(update(AppleCertificate).where(AppleCertificate.id.in_(ids)).values(active=False))
    credentials.reset_caches()
    try:
        yield
    finally:
        with db.transaction() as session:
            session.execute(update(AppleCertificate).where(AppleCertificate.id.in_(ids)).values(active=True))
        credentials.reset_caches()


def _page(client: TestClient, path: str, ua: str) -> str:
    r = client.get(path, headers={"user-agent": ua})
    assert r.status_code == 200, r.text
    return r.text


def test_buttons_follow_what_is_set_up(app, shop: Shop) -> None:
    program = shop.program("bonus", BONUS_RULES)
    guest = TestClient(app, headers={"user-agent": IPHONE})
    with no_installation_certificate():
        done, card = join(guest, program, random_phone())
        token = card.rsplit("/", 1)[1]
        for path in (done, card):
            for ua in (IPHONE, ANDROID):
                html = _page(guest, path, ua)
                assert 'data-wallet="apple"' not in html and 'data-wallet="google"' not in html
                assert NO_WALLET in html and "эта страница и есть ваша карта" in html

        # The pass link, tapped anyway: a page for a browser, problem+json for a program.
        page = guest.get(f"/c/{token}/pass.pkpass", headers={"accept": "text/html,application/xhtml+xml"})
        assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
        assert "Apple Wallet ещё не подключён" in page.text and f'href="/c/{token}"' in page.text
        assert "import-cert" not in page.text
        api = guest.get(f"/c/{token}/pass.pkpass", headers={"accept": "application/json"})
        assert api.status_code == 503 and api.json()["code"] == "unavailable"

        # The café's own certificate: Apple's button on iPhones; still no Google issuer.
        with db.transaction() as session:
            credentials.store_identity(
                session, certs.development_chain("pass.test.buttons"), shop.merchant_id
            )
        credentials.reset_caches()
        html = _page(guest, card, IPHONE)
        assert 'data-wallet="apple"' in html and NO_WALLET not in html
        html = _page(guest, card, ANDROID)
        assert 'data-wallet="google"' not in html and NO_WALLET in html
        assert guest.get(f"/c/{token}/pass.pkpass").headers["content-type"] == "application/vnd.apple.pkpass"

        # A Google issuer: Google's button on Android phones.
        with db.transaction() as session:
            import_key(session, development_key_file("buttons"), "3388000000012349999", shop.merchant_id)
        html = _page(guest, card, ANDROID)
        assert 'data-wallet="google"' in html and NO_WALLET not in html
        assert 'data-wallet="apple"' not in _page(guest, done, ANDROID)
