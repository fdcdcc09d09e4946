"""A gift certificate's Apple pass: storeCard style with the balance and the expiry, built
and signed by the same builder and signer as cards, served by the PassKit web service by
its serial; spending from it pushes the devices holding it (through the outbox) and the
device fetches the new balance. The certificate page offers the button where it works."""

from __future__ import annotations

import datetime as dt

from fakes.apns import FakeApns
from fakes.wallet_device import Device, open_pkpass
from loyalwallet import db
from loyalwallet.certificates.models import GiftCertificate
from loyalwallet.outbox import worker
from loyalwallet.wallet.apple import passes
from loyalwallet.wallet.apple.models import AppleCertificate
from support import Shop


def test_the_pass_follows_the_balance(
    shop: Shop, apple_cert: AppleCertificate, dev_root: str, apns: FakeApns
) -> None:
    cert = shop.post("/api/v1/certificates", {"amount": 300_000, "message": "С днём рождения!"}).json()
    r = shop.client.get(cert["apple_pass_url"].replace("http://testserver", ""))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/vnd.apple.pkpass"
    pj = open_pkpass(r.content, dev_root).pass_json  # signed by the installation's chain
    assert passes.problems(pj) == []
    ptid, serial, token = pj["passTypeIdentifier"], pj["serialNumber"], pj["authenticationToken"]
    assert serial.startswith("gc.") and len(serial) == 35  # the id encrypted: no count revealed
    header = pj["storeCard"]["headerFields"][0]
    assert (
        header["key"] == "balance"
        and header["value"] == "3\u00a0000\u00a0₽"
        and "%@" in header["changeMessage"]
    )
    (expires,) = [f for f in pj["storeCard"]["secondaryFields"] if f["key"] == "expires"]
    assert dt.datetime.fromisoformat(expires["value"].replace("Z", "+00:00")).date() == (
        dt.datetime.fromisoformat(cert["expires_at"]).astimezone(dt.UTC).date()
    )
    back = {f["key"]: f["value"] for f in pj["storeCard"]["backFields"]}
    assert back["back_message"] == "С днём рождения!" and back["back_code"] == cert["code_display"]
    assert "sharingProhibited" not in pj and pj["barcodes"][0]["message"] == cert["code"]

    device = Device(shop.client)
    assert device.register(ptid, serial, token).status_code == 201
    assert device.register(ptid, serial, "wrong-token-000000").status_code == 401
    assert device.changed(ptid, tag=None).json()["serialNumbers"] == [serial]
    assert device.changed(ptid).status_code == 204
    spent = shop.post(f"/api/v1/certificates/{cert['code']}/redemptions", {"amount": 50_000}, role="cashier")
    assert spent.status_code == 201
    worker.drain()
    assert apns.tokens() == [device.push_token]
    assert device.changed(ptid).json()["serialNumbers"] == [serial]
    with db.transaction() as session:  # the fetch comes a little later than the change
        row = session.get(GiftCertificate, cert["id"])
        assert row is not None
        row.updated_at -= dt.timedelta(seconds=10)
    fresh = device.fetch(ptid, serial, token)
    assert fresh.status_code == 200
    assert (
        open_pkpass(fresh.content, dev_root).pass_json["storeCard"]["headerFields"][0]["value"]
        == "2\u00a0500\u00a0₽"
    )
    assert device.fetch(ptid, serial, token).status_code == 304

    # The certificate page offers the Apple button (a certificate signs passes here).
    page = shop.client.get(cert["web_url"].replace("http://testserver", ""), headers={"user-agent": "iPhone"})
    assert f'href="/g/{cert["web_url"].rsplit("/", 1)[-1]}/pass.pkpass"' in page.text
    assert 'data-wallet="google"' not in page.text  # no Google issuer for this merchant
    # A cancelled one: the pass is voided, the page offers no button.
    shop.post(f"/api/v1/certificates/{cert['code']}/void", {"reason": "returned"}, role="manager")
    worker.drain()
    voided = shop.client.get(cert["apple_pass_url"].replace("http://testserver", ""))
    assert open_pkpass(voided.content, dev_root).pass_json.get("voided") is True
    page = shop.client.get(cert["web_url"].replace("http://testserver", ""))
    assert "data-wallet=" not in page.text
