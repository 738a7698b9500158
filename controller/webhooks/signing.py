"""Webhook signatures: ``Kallglot-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">``.

The HMAC key is the whole signing secret (``whsec_…``) as UTF-8 bytes. While a rotated-out secret
is still in its grace period the header carries one ``v1=`` per secret (newest first); a
receiver accepts the request when any of them matches its secret.

Receivers: :func:`verify_signature` is self-contained (standard library only), so it can be
copied as is. It refuses a timestamp more than ``tolerance_s`` (default 300 s) away from the
receiver's clock, which bounds how long a captured request can be replayed; de-duplicate by
``Kallglot-Event-Id`` as well, since retries resend the same event.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence

SIGNATURE_HEADER = "Kallglot-Signature"
EVENT_ID_HEADER = "Kallglot-Event-Id"
EVENT_TYPE_HEADER = "Kallglot-Event-Type"
SECRET_PREFIX = "whsec_"  # noqa: S105 -- a prefix, not a secret
DEFAULT_TOLERANCE_S = 300


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` + 32 random bytes, URL-safe base64."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    payload = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def signature_header(signing_secrets: Sequence[str], body: bytes, timestamp: int) -> str:
    """The header value for ``body`` signed at ``timestamp`` with each of ``signing_secrets``."""
    parts = [f"t={timestamp}"] + [f"v1={_mac(s, timestamp, body)}" for s in signing_secrets]
    return ",".join(parts)


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    *,
    now: float | None = None,
) -> bool:
    """True when ``header`` (the Kallglot-Signature value) signs the raw ``body`` with ``secret``
    and its timestamp is within ``tolerance_s`` seconds of now.

    Pass the request body exactly as received (bytes, before any JSON parsing).
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = _mac(secret, timestamp, body)
    # Compare against every candidate (no early exit) in constant time per comparison.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate)
    return matched
