"""What the renderer needs from the store, validated: one dataclass per rendered concept.

The API validates portal input too, but the renderer must be safe on its own: anything that
FreeSWITCH could misread (a newline in a host, a quote in a user name, an unparsable CIDR)
is rejected here with an error naming the field, before a single file is written.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass, field

from controller.ids import has_prefix

TRANSPORTS: tuple[str, ...] = ("tls", "tcp", "udp")
# Stable preference order used when several organizations' lists are merged.
CODECS: tuple[str, ...] = ("OPUS", "G722", "PCMU", "PCMA")

# Used with fullmatch: `$` alone would accept a trailing newline.
_HOST_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$", re.ASCII)
_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$", re.ASCII)
_A1_HASH = re.compile(r"^[0-9a-f]{32}$", re.ASCII)
# RFC 3261 "user" characters besides letters and digits (unreserved + user-unreserved).
_SIP_USER_EXTRA = frozenset("-_.!~*'()&=+$,;?/")
MAX_USER_LEN = 128
# FreeSWITCH's pre-processor reads 2048-byte lines; 128 characters written as character
# references (at most 10 bytes each) keep the secrets line well inside that.
MAX_SECRET_LEN = 128


class ConfigInputError(ValueError):
    """A stored setting that cannot be rendered safely; ``field`` names it (never a secret)."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field = field_name
        self.reason = reason


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_host(value: object, field_name: str, allow_port: bool = False) -> str:
    """A DNS name or IP literal (IPv6 in brackets when a port follows), optionally ``:port``."""
    if not isinstance(value, str) or not value:
        raise ConfigInputError(field_name, "must be a host name or IP address")
    host, port = value, None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise ConfigInputError(field_name, f"unterminated IPv6 literal in {_show(value)}")
        host, rest = value[1:end], value[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ConfigInputError(field_name, f"unexpected text after IPv6 literal in {_show(value)}")
            port = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigInputError(field_name, f"{_show(value)} is not a valid IPv6 literal") from None
    else:
        if value.count(":") == 1:
            host, port = value.split(":")
        elif ":" in value:
            try:
                ipaddress.IPv6Address(value)
            except ValueError:
                raise ConfigInputError(field_name, f"{_show(value)} is not a host name") from None
            host = value
        if ":" not in host:
            labels = host.rstrip(".").split(".") if host else []
            if not labels or len(host) > 253 or not all(_HOST_LABEL.fullmatch(lb) for lb in labels):
                raise ConfigInputError(field_name, f"{_show(value)} is not a host name or IP address")
    if port is not None:
        if not allow_port:
            raise ConfigInputError(field_name, f"{_show(value)} must not carry a port")
        if not (port.isascii() and port.isdigit() and 0 < int(port) <= 65535):
            raise ConfigInputError(field_name, f"port in {_show(value)} must be 1-65535")
    return value


def check_sip_user(value: object, field_name: str) -> str:
    """A SIP user part: letters/digits (any script) and RFC 3261 user characters, 1-128 long.

    Characters FreeSWITCH would misread in a gateway's From URI or a digest quoted-string
    (`@ : " \\ < > % #` …) are refused, although the API's SipToken accepts them.
    """
    if not isinstance(value, str) or not value:
        raise ConfigInputError(field_name, "must be a non-empty string")
    if len(value) > MAX_USER_LEN:
        raise ConfigInputError(field_name, f"must be at most {MAX_USER_LEN} characters")
    for ch in value:
        if not (ch.isalnum() or ch in _SIP_USER_EXTRA):
            raise ConfigInputError(field_name, f"character {ch!r} is not allowed in a SIP user name")
    return value


def check_secret(value: object, field_name: str) -> str:
    """Secrets may hold anything printable; the message never repeats the value."""
    if not isinstance(value, str) or not value:
        raise ConfigInputError(field_name, "must be a non-empty string")
    if len(value) > MAX_SECRET_LEN:
        raise ConfigInputError(field_name, f"must be at most {MAX_SECRET_LEN} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") for ch in value):
        raise ConfigInputError(field_name, "contains a control character")
    return value


def check_cidr(value: object, field_name: str) -> str:
    """An IPv4/IPv6 address or network; returned in canonical form (host bits cleared)."""
    if not isinstance(value, str):
        raise ConfigInputError(field_name, "must be an IP address or CIDR string")
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise ConfigInputError(field_name, f"{_show(value)} is not an IP address or CIDR") from None


def check_e164(value: object, field_name: str) -> str:
    if not isinstance(value, str) or not _E164.fullmatch(value):
        raise ConfigInputError(field_name, f"{_show(value)} is not an E.164 number")
    return value


def check_a1_hash(value: object, field_name: str) -> str:
    if not isinstance(value, str) or not _A1_HASH.fullmatch(value.lower()):
        raise ConfigInputError(field_name, "must be 32 hexadecimal digits (md5 of user:realm:password)")
    return value.lower()


def check_id(value: object, prefix: str, field_name: str) -> str:
    if not isinstance(value, str) or not has_prefix(value, prefix):
        raise ConfigInputError(field_name, f"{_show(value)} is not a {prefix}_ id")
    return value


def check_subset(values: object, allowed: tuple[str, ...], field_name: str) -> tuple[str, ...]:
    if not isinstance(values, list):
        raise ConfigInputError(field_name, "must be a list")
    out: list[str] = []
    for i, v in enumerate(values):
        if v not in allowed:
            raise ConfigInputError(f"{field_name}[{i}]", f"{_show(v)} is not one of {', '.join(allowed)}")
        if v not in out:
            out.append(v)
    return tuple(out)


@dataclass(frozen=True)
class OrgSip:
    """A SIP-enabled organization that has credentials: one directory user, maybe one ACL."""

    org_id: str
    username: str
    a1_hash: str
    ip_allowlist: tuple[str, ...]
    allowed_transports: tuple[str, ...]
    allowed_codecs: tuple[str, ...]

    @property
    def acl_name(self) -> str | None:
        """Name of this organization's ACL list, or None when it has no IP filtering."""
        return f"kallglot_{self.org_id}" if self.ip_allowlist else None


@dataclass(frozen=True)
class Gateway:
    """An outbound trunk to a provider (one per active connection with ``sip`` settings)."""

    connection_id: str
    proxy: str
    username: str
    password: str = field(repr=False)
    register: bool

    @property
    def name(self) -> str:
        return self.connection_id

    @property
    def realm(self) -> str:
        """The proxy without its port: providers challenge with their host name as realm."""
        if self.proxy.startswith("["):
            return self.proxy[: self.proxy.index("]") + 1]
        return self.proxy.split(":")[0] if self.proxy.count(":") == 1 else self.proxy

    @property
    def password_variable(self) -> str:
        return f"kallglot_gw_{self.connection_id}_password"


@dataclass(frozen=True)
class ManagedNumber:
    number_id: str
    number: str

    @property
    def digits(self) -> str:
        return self.number.lstrip("+")


@dataclass(frozen=True)
class Rejection:
    """A stored record left out of the render: which field, and why (never a secret)."""

    field: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason}


@dataclass(frozen=True)
class ConfigInput:
    """Everything one render needs, already validated and in a stable order."""

    sip_domain: str
    profile: str
    controller_address: str
    tls_cert_dir: str
    orgs: tuple[OrgSip, ...] = ()
    gateways: tuple[Gateway, ...] = ()
    provider_cidrs: tuple[str, ...] = ()
    numbers: tuple[ManagedNumber, ...] = ()
    # Transports the profile binds: the install's KALLGLOT_SIP_TRANSPORTS, never derived from
    # tenants, so that no organization's change can need a profile restart (which would end every
    # organization's calls). Which transport an organization may use is checked per call (403).
    transports: tuple[str, ...] = TRANSPORTS
    # KALLGLOT_SIP_TRUSTED_PROXIES (the Kamailio front, docs/kamailio.md): sofia believes their
    # X-AUTH-IP header for auth-acl and apply-inbound-acl (apply-proxy-acl).
    trusted_proxies: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()  # org ids that are SIP-enabled but have no credentials yet
    rejected: tuple[Rejection, ...] = ()  # records left out because a field failed validation

    PROVIDER_ACL = "kallglot_providers"
    PROXY_ACL = "kallglot_proxies"
    # Retry-After of the 503 a call gets while no controller listens (restart, upgrade, crash).
    CONTROLLER_AWAY_RETRY_AFTER_S = 5

    @property
    def codecs(self) -> tuple[str, ...]:
        wanted = {c for org in self.orgs for c in org.allowed_codecs}
        return tuple(c for c in CODECS if c in wanted) or CODECS
