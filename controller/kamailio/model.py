"""What the Kamailio render needs, validated: the FreeSWITCH nodes and the front's own settings.

Every value ends up inside a Kamailio script string, a dispatcher.list line or tls.cfg, none of
which has an escape syntax we could rely on, so values are restricted to what they must be (IP
literals, DNS names, ports, plain absolute paths) and anything else is refused naming the field.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from controller.fsconfig.model import ConfigInputError, check_host

# Node states the render understands: the node registry's (controller/cluster) plus "draining".
# Only "up" nodes get new calls; the others stay listed, admin-disabled, so `kamcmd
# dispatcher.list` shows them and a re-render brings them back without renumbering anything.
NODE_STATES: tuple[str, ...] = ("up", "draining", "stopped", "dead")
NODE_TRANSPORTS: tuple[str, ...] = ("udp", "tcp")
LISTEN_PROTOS: tuple[str, ...] = ("udp", "tcp", "tls")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", re.ASCII)
_REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,31}", re.ASCII)
_PATH = re.compile(r"/[A-Za-z0-9_./@+-]{0,4095}", re.ASCII)


class KamailioConfigError(ConfigInputError):
    """A node or setting that cannot be rendered safely; ``field`` names it."""


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _ip_port(value: object, field_name: str, default_port: int | None = None) -> tuple[str, int]:
    """``ip:port`` or ``[v6]:port`` (an IP literal: dispatcher's probing and ds_is_from_list
    compare addresses, and a DNS name would be resolved once at start only)."""
    if not isinstance(value, str) or not value:
        raise KamailioConfigError(field_name, "must be ip:port")
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
        if not sep:
            host, port = value[1:].rstrip("]"), ""
    elif value.count(":") == 1:
        host, port = value.split(":")
    else:
        host, port = value, ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise KamailioConfigError(field_name, f"{_show(value)} is not an IP address[:port]") from None
    if not port:
        if default_port is None:
            raise KamailioConfigError(field_name, f"{_show(value)} needs a port")
        return str(ip), default_port
    if not (port.isascii() and port.isdigit() and 0 < int(port) <= 65535):
        raise KamailioConfigError(field_name, f"port in {_show(value)} must be 1-65535")
    return str(ip), int(port)


def _hostport(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


@dataclass(frozen=True)
class KamailioNode:
    """One FreeSWITCH node behind the front."""

    name: str
    sip_address: str  # ip:port of the node's SIP profile (what Kamailio sends to)
    region: str = ""
    state: str = "up"

    def validated(self, index: int) -> KamailioNode:
        where = f"nodes[{index}]"
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise KamailioConfigError(f"{where}.name", "must be 1-63 letters, digits, '_', '.' or '-'")
        ip, port = _ip_port(self.sip_address, f"{where}.sip_address", default_port=5060)
        if self.region and not (isinstance(self.region, str) and _REGION.fullmatch(self.region)):
            raise KamailioConfigError(f"{where}.region", "must be 1-32 lower-case letters, digits or '-'")
        if self.state not in NODE_STATES:
            raise KamailioConfigError(f"{where}.state",
                                      f"{_show(self.state)} is not one of {', '.join(NODE_STATES)}")
        return KamailioNode(self.name, _hostport(ip, port), self.region, self.state)

    @property
    def active(self) -> bool:
        return self.state == "up"


@dataclass(frozen=True)
class Listen:
    proto: str
    ip: str
    port: int

    @property
    def socket(self) -> str:
        return f"{self.proto}:{_hostport(self.ip, self.port)}"


def parse_listen(value: object, field_name: str) -> Listen:
    """``proto:ip[:port]`` (port defaults: 5060, TLS 5061)."""
    if not isinstance(value, str) or ":" not in value:
        raise KamailioConfigError(field_name, f"{_show(value)} must be proto:ip[:port] (udp, tcp or tls)")
    proto, rest = value.split(":", 1)
    if proto not in LISTEN_PROTOS:
        raise KamailioConfigError(field_name, f"protocol {_show(proto)} is not one of udp, tcp, tls")
    ip, port = _ip_port(rest, field_name, default_port=5061 if proto == "tls" else 5060)
    return Listen(proto, ip, port)


@dataclass(frozen=True)
class KamailioSettings:
    """The front's own settings (``kallglot kamailio render`` flags)."""

    sip_domain: str
    listen: tuple[str, ...] = ("udp:0.0.0.0:5060", "tcp:0.0.0.0:5060", "tls:0.0.0.0:5061")
    # Public IP put in Via/Record-Route (with each socket's own port) when Kamailio sits behind NAT.
    advertise: str = ""
    tls_certificate: str = "/etc/kamailio/tls/cert.pem"
    tls_private_key: str = "/etc/kamailio/tls/key.pem"
    # SIP OPTIONS to every node this often; a node that misses `probing_threshold` in a row is
    # inactive (no new calls) until it answers again.
    probe_interval_s: int = 10
    probing_threshold: int = 2
    node_transport: str = "udp"  # Kamailio -> FreeSWITCH
    # Where kamailio.cfg finds dispatcher.list and tls.cfg at run time (absolute).
    config_dir: str = "/etc/kamailio"
    # The control socket (kamcmd) lives here: Debian's unit creates /run/kamailio.
    run_dir: str = "/run/kamailio"


@dataclass(frozen=True)
class KamailioInput:
    """Validated, ready to render."""

    settings: KamailioSettings
    nodes: tuple[KamailioNode, ...]
    listens: tuple[Listen, ...]
    advertise: str  # "" or a public IP (brackets for IPv6)

    @property
    def tls(self) -> bool:
        return any(lst.proto == "tls" for lst in self.listens)

    DISPATCHER_SET = 1


def _check_path(value: object, field_name: str) -> str:
    if not isinstance(value, str) or not _PATH.fullmatch(value) or "/../" in value + "/":
        raise KamailioConfigError(field_name, "must be an absolute path of letters, digits and _ . / @ + -")
    return value


def build_input(settings: KamailioSettings, nodes: list[KamailioNode]) -> KamailioInput:
    checked = tuple(node.validated(i) for i, node in enumerate(nodes))
    if not checked:
        raise KamailioConfigError("nodes", "at least one FreeSWITCH node is needed")
    seen_names: set[str] = set()
    seen_addresses: set[str] = set()
    for i, node in enumerate(checked):
        if node.name in seen_names:
            raise KamailioConfigError(f"nodes[{i}].name", f"{node.name!r} is listed twice")
        if node.sip_address in seen_addresses:
            raise KamailioConfigError(f"nodes[{i}].sip_address", f"{node.sip_address} is listed twice")
        seen_names.add(node.name)
        seen_addresses.add(node.sip_address)
    try:
        check_host(settings.sip_domain, "sip_domain")
    except ConfigInputError as exc:
        raise KamailioConfigError(exc.field, exc.reason) from None
    if not settings.listen:
        raise KamailioConfigError("listen", "at least one listen socket is needed")
    listens = tuple(parse_listen(v, f"listen[{i}]") for i, v in enumerate(settings.listen))
    if len({lst.socket for lst in listens}) != len(listens):
        raise KamailioConfigError("listen", "a socket is listed twice")
    advertise = ""
    if settings.advertise:
        try:
            public = ipaddress.ip_address(settings.advertise)
        except ValueError:
            reason = f"{_show(settings.advertise)} is not an IP address"
            raise KamailioConfigError("advertise", reason) from None
        advertise = f"[{public}]" if public.version == 6 else str(public)
    if any(lst.proto == "tls" for lst in listens):
        _check_path(settings.tls_certificate, "tls_certificate")
        _check_path(settings.tls_private_key, "tls_private_key")
    _check_path(settings.config_dir, "config_dir")
    _check_path(settings.run_dir, "run_dir")
    if not (isinstance(settings.probe_interval_s, int) and 1 <= settings.probe_interval_s <= 3600):
        raise KamailioConfigError("probe_interval_s", "must be 1-3600 seconds")
    if not (isinstance(settings.probing_threshold, int) and 1 <= settings.probing_threshold <= 10):
        raise KamailioConfigError("probing_threshold", "must be 1-10")
    if settings.node_transport not in NODE_TRANSPORTS:
        raise KamailioConfigError("node_transport", "must be udp or tcp")
    return KamailioInput(settings=settings, nodes=checked, listens=listens, advertise=advertise)
