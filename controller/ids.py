"""Prefixed, time-sortable identifiers (``sess_01J…``), Crockford base32 like ULID.

Session ids travel as the SIP request user (``sip:<id>@<domain>``), so they hold only
letters and digits after the prefix: FreeSWITCH's dialplan matches ``^sess_[0-9A-Za-z]+$``.
"""

from __future__ import annotations

import secrets
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

PREFIXES = frozenset(
    {"org", "key", "sess", "pcon", "pn", "leg", "turn", "req", "evt", "sip", "we", "whd", "log"}
)


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """A 26-character ULID-style body (48-bit ms timestamp + 80 random bits) after ``prefix_``."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    millis = int(time.time() * 1000)
    body = _encode(millis, 10) + _encode(secrets.randbits(80), 16)
    return f"{prefix}_{body}"


def has_prefix(value: str, prefix: str) -> bool:
    """True when ``value`` looks like an id of this kind (prefix, then 1–64 base32/alnum chars)."""
    if not isinstance(value, str) or not value.startswith(prefix + "_"):
        return False
    body = value[len(prefix) + 1 :]
    return 0 < len(body) <= 64 and body.isascii() and body.isalnum()
