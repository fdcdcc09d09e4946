"""The fake APNs: HTTP/1.1 refused as Apple does, every push of a multiplexed batch checked."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx

from fakes.apns import FakeApns
from loyalwallet.wallet.apple import apns


def test_the_fake_answers_http1_with_http2_required(tmp_path: Path) -> None:
    fake = FakeApns(tmp_path).start()
    try:
        response = httpx.post(
            f"{fake.url}/3/device/{'ab' * 32}",
            content=b"{}",
            headers={"apns-topic": "pass.x"},
            verify=ssl.create_default_context(cafile=fake.ca_file),
        )
        assert response.status_code == 400
        assert response.json() == {"reason": "HTTP2Required"}
        assert fake.pushes == []
    finally:
        fake.stop()


def test_the_fake_checks_every_push_of_a_multiplexed_batch(tmp_path: Path) -> None:
    fake = FakeApns(tmp_path, topic="pass.ok").start()
    client = apns.Pusher(fake.url, cert=_cert(tmp_path), ca_file=fake.ca_file)
    try:
        good = [f"{i:064x}" for i in range(50)]
        results = client.push_many([(t, "pass.ok") for t in good] + [("zz", "pass.ok"), (good[0], "pass.no")])
        assert [r.status for r in results[:50]] == [200] * 50
        assert (results[50].status, results[50].reason) == (400, "BadDeviceToken")
        assert (results[51].status, results[51].reason) == (400, "BadTopic")
        assert sorted(fake.tokens()) == sorted(good)
        assert len(fake.connections) == 1
    finally:
        client.close()
        fake.stop()


def _cert(tmp_path: Path) -> tuple[str, str]:
    from fakes.apns import make_tls_files

    cert, key = make_tls_files(tmp_path / "client")
    return cert.read_text(), key.read_text()
