"""The APNs HTTP/2 client against the fake APNs: streams within the server's
SETTINGS_MAX_CONCURRENT_STREAMS on one connection, GOAWAY and lost connections (the pushes
not answered go again on a new connection), timeouts, Apple's answers mapped."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fakes.apns import FakeApns, make_tls_files
from loyalwallet.wallet.apple import apns

TOPIC = "pass.test.client"


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeApns]:
    f = FakeApns(tmp_path / "fake", topic=TOPIC).start()
    yield f
    f.stop()


def _pusher(tmp_path: Path, fake: FakeApns, timeout: float = 10.0) -> apns.Pusher:
    cert, key = make_tls_files(tmp_path / "client")
    return apns.Pusher(
        fake.url, cert=(cert.read_text(), key.read_text()), ca_file=fake.ca_file, timeout=timeout
    )


def _tokens(n: int, start: int = 0) -> list[str]:
    return [f"{i:064x}" for i in range(start, start + n)]


def test_streams_stay_within_the_servers_max_concurrent_streams(tmp_path: Path) -> None:
    # The fake holds each answer a moment, so streams pile up; opening a 6th at once would
    # cost the connection (h2 on the fake's side takes it as a protocol error).
    fake = FakeApns(tmp_path / "fake", topic=TOPIC, max_streams=5, answer_delay=0.02).start()
    pusher = _pusher(tmp_path, fake)
    try:
        tokens = _tokens(40)
        results = pusher.push_many([(t, TOPIC) for t in tokens])
        assert [r.status for r in results] == [200] * 40
        assert [r.token for r in results] == tokens  # in the order asked
        # The bulk threads' batches at once: still one connection, still 5 streams at most.
        batches: list[list[apns.PushResult]] = []
        threads = [
            threading.Thread(
                target=lambda i=i: batches.append(
                    pusher.push_many([(t, TOPIC) for t in _tokens(25, 100 * i)])
                )
            )
            for i in range(1, 5)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r.status for b in batches for r in b) == [200] * 100
        assert fake.peak_streams == 5
        assert len(fake.connections) == 1 and pusher.connections == 1
        # Our count of open streams (h2's own walks them all per new stream) is back to
        # 0, and h2 keeps no answered stream (the walk used to drop them).
        conn = pusher._mux.conn
        assert conn is not None and conn.h2.outbound_open == 0 and not conn.h2.streams
        assert sorted(fake.tokens()) == sorted(
            tokens + [t for i in range(1, 5) for t in _tokens(25, 100 * i)]
        )
    finally:
        pusher.close()
        fake.stop()


def test_after_goaway_the_pushes_apns_did_not_process_go_on_a_new_connection(
    tmp_path: Path, fake: FakeApns
) -> None:
    fake.goaway_after(7)  # every connection: 7 answers, then GOAWAY (Apple's "Shutdown")
    pusher = _pusher(tmp_path, fake)
    try:
        tokens = _tokens(30)
        results = pusher.push_many([(t, TOPIC) for t in tokens])
        assert [r.status for r in results] == [200] * 30
        # Each push reached APNs exactly once: those after the GOAWAY's last stream were
        # not processed there, and were sent on the next connection.
        assert Counter(fake.tokens()) == Counter(tokens)
        assert pusher.connections == 5  # ceil(30 / 7)
        # A push after the last GOAWAY opens a connection of its own.
        assert pusher.push(tokens[0], TOPIC).ok
    finally:
        pusher.close()


def test_a_dropped_connection_is_reopened_and_its_unanswered_pushes_sent_again(
    tmp_path: Path, fake: FakeApns
) -> None:
    pusher = _pusher(tmp_path, fake)
    try:
        assert pusher.push(_tokens(1, 999)[0], TOPIC).ok  # the connection is open
        fake.reset()
        fake.drop_after(5)  # the network drops it after 5 answers, without a GOAWAY
        tokens = _tokens(20)
        results = pusher.push_many([(t, TOPIC) for t in tokens])
        assert [r.status for r in results] == [200] * 20
        assert Counter(fake.tokens()) == Counter(tokens)  # the 15 unanswered went again, once
        assert pusher.connections == 2
    finally:
        pusher.close()


def test_an_unanswered_push_times_out_and_is_tried_once_more(tmp_path: Path, fake: FakeApns) -> None:
    pusher = _pusher(tmp_path, fake, timeout=0.4)
    try:
        lost, kept = _tokens(2)
        fake.silence(lost)  # its first answer is lost: the second attempt gets one
        assert pusher.push(lost, TOPIC).ok
        assert fake.tokens() == [lost, lost]
        fake.silence(kept, times=2)  # both attempts unanswered: no answer, tried again later
        result = pusher.push(kept, TOPIC)
        assert (result.status, result.reason) == (0, "ReadTimeout") and result.retryable
    finally:
        pusher.close()


def test_apples_answers_are_mapped(tmp_path: Path, fake: FakeApns) -> None:
    pusher = _pusher(tmp_path, fake)
    try:
        gone, bad, busy, down, ok = _tokens(5)
        fake.answer(gone, 410, "Unregistered")
        fake.answer(bad, 400, "BadDeviceToken")
        fake.answer(busy, 429, "TooManyRequests")
        fake.answer(down, 503, "ServiceUnavailable")
        results = {r.token: r for r in pusher.push_many([(t, TOPIC) for t in (gone, bad, busy, down, ok)])}
        assert results[gone].status == 410 and results[gone].reason == "Unregistered"
        assert results[gone].gone and results[gone].timestamp_ms  # when the token stopped being valid
        assert results[bad].gone and not results[bad].retryable
        assert results[busy].retryable and results[down].retryable and not results[down].gone
        assert results[ok].ok and results[ok].apns_id
        refused = pusher.push(ok, "pass.other.topic")
        assert (refused.status, refused.reason) == (400, "BadTopic") and not refused.retryable
    finally:
        pusher.close()


def test_an_expired_provider_token_is_signed_again_and_the_push_sent_once_more(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    fake = FakeApns(
        tmp_path / "fake", team_key=key.public_key(), key_id="KEYID00001", team_id="TEAM000001", topic=TOPIC
    ).start()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    auth = apns.TokenAuth(pem, "KEYID00001", "TEAM000001")
    pusher = apns.Pusher(fake.url, token_auth=auth, ca_file=fake.ca_file)
    try:
        token = _tokens(1)[0]
        fake.answer(token, 403, "ExpiredProviderToken")
        assert pusher.push(token, TOPIC).ok
        assert fake.tokens() == [token, token]
        assert all(p["auth"].startswith("bearer ") for p in fake.pushes)
    finally:
        pusher.close()
        fake.stop()


def test_no_server_is_no_answer(tmp_path: Path, fake: FakeApns) -> None:
    url = fake.url
    fake.stop()  # nothing listens there any more
    cert, key = make_tls_files(tmp_path / "client")
    pusher = apns.Pusher(url, cert=(cert.read_text(), key.read_text()), ca_file=fake.ca_file, timeout=2)
    try:
        results = pusher.push_many([(t, TOPIC) for t in _tokens(3)])
        assert [r.status for r in results] == [0, 0, 0] and all(r.retryable for r in results)
        assert "ConnectionRefused" in (results[0].reason or "")
    finally:
        pusher.close()


def test_the_async_face_multiplexes_on_the_callers_loop(tmp_path: Path, fake: FakeApns) -> None:
    cert, key = make_tls_files(tmp_path / "client")

    async def run() -> list[apns.PushResult]:
        client = apns.ApnsClient(fake.url, cert=(cert.read_text(), key.read_text()), ca_file=fake.ca_file)
        try:
            first, second = await asyncio.gather(
                client.push_many([(t, TOPIC) for t in _tokens(30)]), client.push(_tokens(1, 50)[0], TOPIC)
            )
            return [*first, second]
        finally:
            await client.aclose()

    # In a thread of its own: a browser test of the same pytest worker (Playwright's sync
    # API) may leave an event loop marked running in this one.
    with ThreadPoolExecutor(1) as pool:
        results = pool.submit(asyncio.run, run()).result()
    assert [r.status for r in results] == [200] * 31
    assert len(fake.connections) == 1
