"""verify_signature: the receivers' helper."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

import pytest

from controller.webhooks.signing import new_secret, signature_header, verify_signature
from controller.webhooks.ssrf import is_public

BODY = b'{"id":"evt_1","type":"session.created"}'


def test_header_is_the_documented_hmac() -> None:
    secret = new_secret()
    header = signature_header([secret], BODY, 1_700_000_000)
    expected = hmac.new(secret.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


def test_verify_accepts_and_refuses() -> None:
    secret, other = new_secret(), new_secret()
    header = signature_header([secret], BODY, 1000)
    assert verify_signature(secret, header, BODY, now=1000)
    assert verify_signature(secret, header, BODY, now=1300)  # at the edge of the 300 s window
    assert not verify_signature(secret, header, BODY, now=1301)  # replayed too late
    assert not verify_signature(secret, header, BODY, now=699)
    assert not verify_signature(other, header, BODY, now=1000)
    assert not verify_signature(secret, header, BODY + b" ", now=1000)
    assert not verify_signature(secret, header.replace("t=1000", "t=1001"), BODY, now=1000)
    assert verify_signature(secret, header, BODY, tolerance_s=10_000, now=5000)
    for broken in ("", "t=1000", "v1=abc", "t=x,v1=abc", "garbage"):
        assert not verify_signature(secret, broken, BODY, now=1000)


def test_two_secrets_during_rotation() -> None:
    new, old = new_secret(), new_secret()
    header = signature_header([new, old], BODY, 1000)
    assert header.count("v1=") == 2
    assert verify_signature(new, header, BODY, now=1000) and verify_signature(old, header, BODY, now=1000)
    assert not verify_signature(new_secret(), header, BODY, now=1000)


@pytest.mark.parametrize(
    ("address", "public"),
    [("93.184.215.14", True), ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", True), ("127.0.0.1", False),
     ("::1", False), ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.1", False), ("10.0.0.1", False),
     ("169.254.169.254", False), ("fe80::1", False), ("fc00::1", False), ("224.0.0.1", False),
     ("ff02::1", False), ("0.0.0.0", False), ("::", False), ("240.0.0.1", False), ("fec0::1", False),
     ("2002:a00:1::", False), ("64:ff9b::7f00:1", False), ("100.64.0.1", False), ("192.0.2.1", False)],
)
def test_address_policy(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public
