"""Outbound webhook signatures: what the receiver computes, and what it refuses."""

import hashlib
import hmac
import time

import pytest
import time_machine

from portal.webhooks import (
    SIGNATURE_HEADER,
    webhook_signature,
    webhook_signature_header,
    webhook_signature_verify,
)

SECRET = "whsec_3b8f0c2a9d4e"
BODY = b'{"event": "review.decided", "review": 17, "outcome": "approved"}'
T = 1_748_858_400  # 2025-06-02 10:00:00 UTC


def test_webhook_signature_is_hmac_sha256_over_timestamp_dot_body():
    expected = hmac.new(SECRET.encode(), b"1748858400." + BODY, hashlib.sha256).hexdigest()

    assert webhook_signature(SECRET, T, BODY) == expected
    assert len(expected) == 64


def test_webhook_signature_header_names_timestamp_and_v1():
    assert SIGNATURE_HEADER == "X-Portal-Signature"
    assert webhook_signature_header(SECRET, BODY, timestamp=T) == (
        f"t={T},v1={webhook_signature(SECRET, T, BODY)}"
    )


@time_machine.travel(T, tick=False)
def test_webhook_signature_header_signs_now_by_default():
    header = webhook_signature_header(SECRET, BODY)

    assert header.startswith(f"t={T},v1=")
    assert webhook_signature_verify(SECRET, header, BODY)


def test_webhook_signature_verify_accepts_within_tolerance():
    header = webhook_signature_header(SECRET, BODY, timestamp=T)

    assert webhook_signature_verify(SECRET, header, BODY, now=T)
    assert webhook_signature_verify(SECRET, header, BODY, now=T + 300)
    assert webhook_signature_verify(SECRET, header, BODY, now=T - 300)


@pytest.mark.parametrize("offset", [301, -301, 86_400])
def test_webhook_signature_verify_refuses_stale_or_future_timestamps(offset):
    header = webhook_signature_header(SECRET, BODY, timestamp=T)

    assert not webhook_signature_verify(SECRET, header, BODY, now=T + offset)


def test_webhook_signature_verify_tolerance_is_configurable():
    header = webhook_signature_header(SECRET, BODY, timestamp=T)

    assert not webhook_signature_verify(SECRET, header, BODY, now=T + 61, tolerance_seconds=60)
    assert webhook_signature_verify(SECRET, header, BODY, now=T + 3600, tolerance_seconds=3600)


def test_webhook_signature_verify_refuses_another_body_secret_or_timestamp():
    header = webhook_signature_header(SECRET, BODY, timestamp=T)
    signature = webhook_signature(SECRET, T, BODY)

    assert not webhook_signature_verify(SECRET, header, BODY + b" ", now=T)
    assert not webhook_signature_verify("whsec_other", header, BODY, now=T)
    # The timestamp is signed: moving it forward to look fresh breaks the signature.
    assert not webhook_signature_verify(SECRET, f"t={T + 1},v1={signature}", BODY, now=T)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "v1=abc",
        f"t={T}",
        f"t=soon,v1={'0' * 64}",
        f"t={T},t={T},v1={'0' * 64}",
        "garbage",
        f"t={T},v1=ünïcode",
        f"t={T},v0={'0' * 64}",
    ],
)
def test_webhook_signature_verify_refuses_malformed_headers(header):
    assert not webhook_signature_verify(SECRET, header, BODY, now=T)


def test_webhook_signature_verify_accepts_any_of_several_v1_during_rotation():
    old = webhook_signature("whsec_old", T, BODY)
    new = webhook_signature(SECRET, T, BODY)
    header = f"t={T},v1={old},v1={new}"

    assert webhook_signature_verify(SECRET, header, BODY, now=T)
    assert webhook_signature_verify("whsec_old", header, BODY, now=T)
    assert not webhook_signature_verify("whsec_third", header, BODY, now=T)


def test_webhook_signature_verify_uses_the_clock_when_now_is_not_given():
    header = webhook_signature_header(SECRET, BODY, timestamp=int(time.time()))

    assert webhook_signature_verify(SECRET, header, BODY)
    with time_machine.travel(time.time() + 600, tick=False):
        assert not webhook_signature_verify(SECRET, header, BODY)
