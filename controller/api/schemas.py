"""Response shapes, as pydantic models: they document the API (OpenAPI) and tests check that
every response matches them. The domain's ``to_json`` methods produce these dictionaries."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from controller.domain.requests import Codec, Mode, Region, Transport
from controller.webhooks.requests import EventType


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(Out):
    type: str
    code: str
    message: str
    param: str | None
    request_id: str


class Error(Out):
    error: ErrorBody


class SessionSip(Out):
    uri: str
    transports: list[Transport]


class LegQuality(Out):
    mos: float
    r_factor: float
    jitter_min_ms: float
    jitter_max_ms: float
    packets_received: int
    packets_sent: int
    flaws: int
    packet_loss_pct: float
    media_flowed: bool
    rtp_timeout: bool
    codec: str | None


class Leg(Out):
    id: str
    role: Literal["customer", "agent"]
    direction: Literal["inbound", "outbound"]
    status: str
    remote: str | None
    sip_code: int | None
    hangup_cause: str | None
    created_at: str
    answered_at: str | None
    ended_at: str | None
    duration_s: float | None
    quality: LegQuality | None = Field(
        description="FreeSWITCH's RTP statistics for the leg, read at hangup (docs/operations.md)")


class Session(Out):
    id: str
    object: Literal["session"]
    status: Literal["created", "connecting", "active", "ending", "ended"]
    mode: Mode
    source_language: str
    target_language: str
    region: Region
    provider: Literal["twilio", "telnyx", "sip"]
    phone_number: str | None
    connection_id: str | None
    direction: Literal["inbound", "outbound"] | None
    sip: SessionSip | None
    metadata: dict[str, Any]
    end_reason: str | None
    created_at: str
    started_at: str | None
    ended_at: str | None
    legs: list[Leg]


class SessionList(Out):
    object: Literal["list"]
    data: list[Session]
    has_more: bool


class Translation(Out):
    language: str | None
    text: str
    # How it was produced: "apertium", "nllb", "opus-mt", "whisper-translate",
    # "whisper-translate+apertium", "same-language"; null for turns stored before it was recorded.
    path: str | None = None


class Turn(Out):
    sequence: int
    speaker: Literal["agent", "customer"]
    language: str
    text: str
    translation: Translation | None
    timestamp: str


class Transcript(Out):
    object: Literal["transcript"]
    session_id: str
    turns: list[Turn]


class ConnectionSip(Out):
    host: str
    username: str
    password: str
    register_: bool = Field(alias="register")


class Connection(Out):
    id: str
    object: Literal["connection"]
    provider: Literal["twilio", "telnyx"]
    name: str
    credentials: dict[str, str]
    sip: ConnectionSip | None
    inbound_addresses: list[str]
    is_default: bool
    status: Literal["active", "disabled", "deleted"]
    created_at: str
    updated_at: str


class ConnectionList(Out):
    object: Literal["list"]
    data: list[Connection]
    has_more: bool


class PhoneNumber(Out):
    id: str
    object: Literal["phone_number"]
    number: str
    connection_id: str
    provider: Literal["twilio", "telnyx"]
    status: Literal["active", "released"]
    created_at: str
    updated_at: str


class PhoneNumberList(Out):
    object: Literal["list"]
    data: list[PhoneNumber]
    has_more: bool


class SessionDefaults(Out):
    mode: Mode
    region: Region
    source_language: str
    target_language: str


class SipSettings(Out):
    object: Literal["sip_settings"]
    enabled: bool
    username: str
    domain: str
    credentials_set: bool
    password_set_at: str | None
    ip_allowlist: list[str]
    require_tls: bool
    require_srtp: bool
    allowed_transports: list[Transport]
    allowed_codecs: list[Codec]
    session_defaults: SessionDefaults
    max_concurrent_calls: int
    updated_at: str


class SipCredentials(Out):
    object: Literal["sip_credentials"]
    username: str
    domain: str
    password: str


class PbxConfig(Out):
    object: Literal["pbx_config"]
    freeswitch: str = Field(description="A sofia gateway (XML) for the PBX's FreeSWITCH")
    asterisk: str = Field(description="pjsip.conf sections (endpoint, auth, aor, identify)")
    summary: str = Field(description="The trunk's parameters for any other SIP PBX, as text")


class WebhookEndpoint(Out):
    id: str
    object: Literal["webhook_endpoint"]
    url: str
    description: str | None
    enabled_events: list[EventType]
    status: Literal["enabled", "disabled", "deleted"]
    previous_secret_expires_at: str | None = Field(
        description="Until then deliveries also carry a signature by the previous secret")
    created_at: str
    updated_at: str


class WebhookEndpointWithSecret(WebhookEndpoint):
    secret: str = Field(description="The signing secret (whsec_…); shown only by create and rotate_secret")


class WebhookEndpointList(Out):
    object: Literal["list"]
    data: list[WebhookEndpoint]
    has_more: bool


class ApiLog(Out):
    id: str
    object: Literal["api_log"]
    kind: Literal["api_request", "webhook_delivery"]
    method: str | None
    path: str | None = Field(description="URL path of an API request, never its query string")
    status: int | None = Field(description="Status we answered, or the receiver answered; null: no response")
    duration_ms: float | None
    request_id: str | None
    error_code: str | None
    endpoint_id: str | None
    event_id: str | None
    event_type: str | None
    attempt: int | None
    created_at: str


class ApiLogList(Out):
    object: Literal["list"]
    data: list[ApiLog]
    has_more: bool


class LanguageDirection(Out):
    source: str
    target: str
    asr: str = Field(description="whisper-base, faster-whisper-small, … (the speech recognizer)")
    mt: str = Field(description="apertium, nllb, opus-mt-de-en, whisper-translate(+apertium), …")
    tts: str | None = Field(description="espeak-ng or piper:<voice>; null: no voice (text only)")


class LanguageNotServed(Out):
    source: str
    target: str
    reason: str
    pull: list[str] = Field(description="`kallglot models pull` names that would serve it")


class Languages(Out):
    object: Literal["languages"]
    engine: str
    directions: list[LanguageDirection]
    not_served: list[LanguageNotServed]
