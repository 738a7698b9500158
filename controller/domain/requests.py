"""Request bodies accepted at the edges (API and call controller), as strict pydantic models.

Unknown fields are refused (``extra="forbid"``) so that a typo never silently does nothing.
Optional fields of PATCH bodies have no default in the schema: omitted or ``null`` means
"unchanged", except ``sip`` of a connection, where an explicit ``null`` removes the gateway.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from controller.domain.languages import check_language

Mode = Literal["bidirectional_translation", "assistive_translation"]
Region = Literal["eu", "us", "ap"]
Transport = Literal["tls", "tcp", "udp"]
Codec = Literal["OPUS", "G722", "PCMU", "PCMA"]
Direction = Literal["inbound", "outbound"]

E164_PATTERN = r"^\+[1-9]\d{1,14}$"
E164 = Annotated[str, StringConstraints(pattern=E164_PATTERN)]
Language = Annotated[str, StringConstraints(pattern=r"^([a-z]{2}|auto)$"), AfterValidator(check_language)]
ResourceId = Annotated[str, StringConstraints(min_length=1, max_length=80)]
# Host names or IP literals FreeSWITCH may dial, with an optional port.
HostPort = Annotated[
    str,
    StringConstraints(
        pattern=r"^([A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?$"
    ),
]
# Printable, no spaces or control characters: these land in FreeSWITCH gateway config.
SipToken = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[!-~]+$")]
# RFC 3261 user-part characters that FreeSWITCH reads unchanged in a gateway's From URI and digest
# header (the renderer's check_sip_user refuses the rest: @ : " \ < > % #).
SipUser = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9\-_.!~*'()&=+$,;?/]+$")
]

METADATA_MAX_BYTES = 8192


def _no_schema_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def optional(**kwargs: Any) -> Any:
    """A PATCH field: omitted → None (unchanged); the schema shows no default."""
    return Field(default=None, json_schema_extra=_no_schema_default, **kwargs)


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def check_ip_or_cidr(value: str) -> str:
    """An IPv4/IPv6 address or network; host bits set in a CIDR are refused (likely a typo)."""
    try:
        if "/" in value:
            ipaddress.ip_network(value, strict=True)
        else:
            ipaddress.ip_address(value)
    except ValueError:
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(f"{value!r} is not an IPv4/IPv6 address or CIDR network") from None
        raise ValueError(f"{value!r} has host bits set; did you mean {network}?") from None
    return value


IpOrCidr = Annotated[str, StringConstraints(min_length=2, max_length=64), AfterValidator(check_ip_or_cidr)]


def _unique(values: list[Any]) -> list[Any]:
    if len(set(values)) != len(values):
        raise ValueError("entries must not repeat")
    return values


def _check_metadata(value: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(value, separators=(",", ":"))) > METADATA_MAX_BYTES:
        raise ValueError(f"metadata must serialize to at most {METADATA_MAX_BYTES} bytes of JSON")
    return value


# ---------------------------------------------------------------------------------- sessions


class Routing(StrictModel):
    """How the session reaches the phone network; at most one of the three methods."""

    phone_number: E164 | None = optional(description="An active managed number of the organization")
    connection_id: ResourceId | None = optional(description="A provider connection (pcon_…)")
    direction: Direction | None = optional(description="With connection_id or phone_number")
    type: Literal["sip"] | None = optional(description='"sip": the caller dials sip:<session id>@<domain>')


class SessionCreate(StrictModel):
    mode: Mode | None = optional()
    source_language: Language | None = optional(description="Party A (customer); auto = detect")
    target_language: Language | None = optional(description="Party B (agent); auto = detect")
    region: Region | None = optional()
    routing: Routing | None = optional()
    metadata: Annotated[dict[str, Any], AfterValidator(_check_metadata)] | None = optional()


# ------------------------------------------------------------------------------- connections


class TwilioCredentials(StrictModel):
    account_sid: Annotated[str, StringConstraints(pattern=r"^AC[0-9a-fA-F]{32}$")]
    auth_token: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{32}$")]


class TelnyxCredentials(StrictModel):
    api_key: Annotated[str, StringConstraints(pattern=r"^KEY[0-9A-Za-z_-]{8,200}$")]


class SipGateway(StrictModel):
    """The SIP trunk FreeSWITCH uses to reach the provider (a sofia gateway)."""

    host: HostPort
    username: SipUser
    password: SipToken
    # "register" would shadow BaseModel.register, hence the alias.
    register_: bool = Field(default=False, alias="register", description="Register with the provider")


Name = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]
AddressList = Annotated[list[IpOrCidr], Field(max_length=200)]


class ConnectionCreate(StrictModel):
    provider: Literal["twilio", "telnyx"]
    name: Name
    credentials: dict[str, str] = Field(
        description="twilio: {account_sid, auth_token}; telnyx: {api_key}. Write-only."
    )
    sip: SipGateway | None = None
    inbound_addresses: AddressList = Field(default_factory=list)
    is_default: bool = False
    status: Literal["active", "disabled"] = "active"


class ConnectionUpdate(StrictModel):
    name: Name | None = optional()
    credentials: dict[str, str] | None = optional()
    sip: SipGateway | None = optional(description="null removes the gateway")
    inbound_addresses: AddressList | None = optional()
    is_default: bool | None = optional()
    status: Literal["active", "disabled"] | None = optional()


# ----------------------------------------------------------------------------- phone numbers


class PhoneNumberCreate(StrictModel):
    number: E164
    connection_id: ResourceId


class PhoneNumberUpdate(StrictModel):
    connection_id: ResourceId | None = optional()
    status: Literal["active", "released"] | None = optional()


# ------------------------------------------------------------------------------ SIP settings


class SessionDefaultsUpdate(StrictModel):
    mode: Mode | None = optional()
    region: Region | None = optional()
    source_language: Language | None = optional()
    target_language: Language | None = optional()


class SipSettingsUpdate(StrictModel):
    enabled: bool | None = optional()
    ip_allowlist: Annotated[list[IpOrCidr], Field(max_length=200)] | None = optional()
    require_tls: bool | None = optional()
    require_srtp: bool | None = optional()
    allowed_transports: (
        Annotated[list[Transport], Field(min_length=1, max_length=3), AfterValidator(_unique)] | None
    ) = optional()
    allowed_codecs: (
        Annotated[list[Codec], Field(min_length=1, max_length=4), AfterValidator(_unique)] | None
    ) = optional(description="Preference order")
    session_defaults: SessionDefaultsUpdate | None = optional()
    max_concurrent_calls: Annotated[int, Field(ge=1, le=100000)] | None = optional()
