"""The caller side: what a SIP caller offers (``CallSpec``) and what it saw (``CallOutcome``),
plus the SIP-level decisions FreeSWITCH takes before any channel exists (transport binding,
digest auth, ``auth-acl``) — read from the rendered configuration like sofia does."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.fsdouble.config import FsConfig, Profile, User

PAYLOAD_TYPES = {"PCMU": "0", "PCMA": "8", "G722": "9", "OPUS": "96"}
RTPMAP = {"PCMU": "PCMU/8000", "PCMA": "PCMA/8000", "G722": "G722/8000", "OPUS": "opus/48000/2"}
CODEC_RATE = {"PCMU": 8000, "PCMA": 8000, "G722": 16000, "OPUS": 48000}


@dataclass
class CallSpec:
    """One INVITE. ``user``/``password`` None = no credentials (the 407 stays final)."""

    destination: str
    user: str | None = None
    password: str | None = None
    source_ip: str = "127.0.0.1"
    source_port: int = 5091
    transport: str = "udp"
    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    crypto: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    domain: str | None = None  # Request-URI/From host; default: the profile's challenge realm
    caller_id: str | None = None
    audio: bytes | Path | None = None  # what the caller says: WAV file/bytes (mono L16) or None
    audio_speed: float = 1.0  # >1 streams faster than real time
    # RTP from the caller (tests/fsdouble/rtpstats.py): the share lost on the way, the spread
    # of arrival times, and when it stops sending (None: until it hangs up; 0: never sends).
    rtp_loss_pct: float = 0.0
    rtp_jitter_ms: float = 0.0
    rtp_stops_after_s: float | None = None
    profile: str | None = None

    def __post_init__(self) -> None:
        self.transport = self.transport.lower()
        if self.transport not in ("udp", "tcp", "tls"):
            raise ValueError(f"transport must be udp, tcp or tls, got {self.transport!r}")
        self.codecs = tuple(c.upper() for c in self.codecs)
        unknown = [c for c in self.codecs if c not in PAYLOAD_TYPES]
        if unknown:
            raise ValueError(f"unknown codecs {unknown}; known: {sorted(PAYLOAD_TYPES)}")

    def crypto_key_line(self) -> str:
        return "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"

    def sdp(self, port: int = 16700) -> str:
        proto = "RTP/SAVP" if self.crypto else "RTP/AVP"
        pts = [PAYLOAD_TYPES[c] for c in self.codecs] + ["101"]
        lines = ["v=0", f"o=caller 53655765 2353687637 IN IP4 {self.source_ip}", "s=-",
                 f"c=IN IP4 {self.source_ip}", "t=0 0", f"m=audio {port} {proto} {' '.join(pts)}"]
        lines += [f"a=rtpmap:{PAYLOAD_TYPES[c]} {RTPMAP[c]}" for c in self.codecs]
        lines += ["a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "a=ptime:20"]
        if self.crypto:
            lines.append(f"a=crypto:{self.crypto_key_line()}")
        return "\r\n".join(lines) + "\r\n"


@dataclass
class CallOutcome:
    """What the caller saw. ``code`` is the final SIP response (None: no response at all, e.g. a
    transport the profile does not bind — ``transport_error`` says what happened)."""

    spec: CallSpec
    code: int | None = None
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    challenged: bool = False
    early_media: bool = False
    uuid: str | None = None
    hangup_cause: str = ""
    transport_error: str | None = None
    codec: str | None = None
    srtp: bool = False
    bye_from_switch: bool = False
    bye_reason: str = ""
    bye_headers: dict[str, str] = field(default_factory=dict)  # of FreeSWITCH's BYE (Reason, sip_bye_h_*)
    _ended: threading.Event = field(default_factory=threading.Event, repr=False)
    _final: threading.Event = field(default_factory=threading.Event, repr=False)
    _hangup: object = field(default=None, repr=False)  # set by the double: callable() -> None
    # Called (on the double's loop) when the final response is known.
    _on_final: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @property
    def answered(self) -> bool:
        return self.code == 200

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    def wait_ended(self, timeout: float | None = None) -> bool:
        """Block until the call is over (BYE either way, or a final error response)."""
        return self._ended.wait(timeout)

    async def await_ended(self, timeout: float | None = None) -> bool:
        return await asyncio.to_thread(self._ended.wait, timeout)

    def hangup(self) -> None:
        """The caller sends BYE (answered call) or CANCEL (still ringing)."""
        if self._hangup is not None and not self.ended:
            self._hangup()  # type: ignore[operator]

    # -- set by the double --------------------------------------------------------------------
    def _set_final(self, code: int, reason: str, headers: dict[str, str] | None = None) -> None:
        if self._final.is_set():
            return
        self.code = code
        self.reason = reason
        self.headers = dict(headers or {})
        self._final.set()
        if code >= 300:
            self._ended.set()
        self._notify()

    def _set_ended(self) -> None:
        self._final.set()
        self._ended.set()
        self._notify()

    def _notify(self) -> None:
        callbacks, self._on_final = self._on_final, []
        for callback in callbacks:
            callback()


class AuthResult:
    def __init__(self, ok: bool, user: User | None = None, code: int = 0, trusted: bool = False) -> None:
        self.ok = ok
        self.user = user
        self.code = code
        self.trusted = trusted


def digest_a1(user: str, realm: str, password: str) -> str:
    return hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()


def authenticate(cfg: FsConfig, profile: Profile, spec: CallSpec) -> AuthResult:
    """sofia's inbound auth: ``apply-inbound-acl`` match → trusted (no challenge); else 407, then
    the digest against the directory user's ``a1-hash``/``password`` and its ``auth-acl``."""
    acl = profile.param("apply-inbound-acl")
    if acl and cfg.acl_allows(acl, spec.source_ip):
        return AuthResult(True, trusted=True)
    if not profile.flag("auth-calls", False):
        return AuthResult(True, trusted=True)
    if spec.user is None or spec.password is None:
        return AuthResult(False, code=407)
    realm = profile.param("challenge-realm") or spec.domain or ""
    if realm in ("auto_from", "auto_to"):
        realm = spec.domain or ""
    user = cfg.find_user(realm, spec.user)
    if user is None:
        return AuthResult(False, code=403)
    expected = user.params.get("a1-hash")
    if expected is None and "password" in user.params:
        expected = digest_a1(spec.user, realm, user.params["password"])
    given = digest_a1(spec.user, realm, spec.password)
    if expected is None or not hmac.compare_digest(expected.lower(), given):
        return AuthResult(False, user=user, code=403)
    auth_acl = user.params.get("auth-acl")
    if auth_acl and not cfg.acl_allows(auth_acl, spec.source_ip):
        return AuthResult(False, user=user, code=403)
    return AuthResult(True, user=user)
