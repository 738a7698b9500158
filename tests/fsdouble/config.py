"""Reads a FreeSWITCH configuration tree (standard XML, as rendered by ``kallglot render``).

Every ``*.xml`` file under the conf dir is parsed; the double looks for the elements FreeSWITCH
itself would use: sofia ``<profile>`` settings, directory ``<domain>``/``<user>`` (``a1-hash``,
``password``, ``auth-acl``, ``<variables>``), ACL ``<list>``s and dialplan ``<context>``s.
``$${name}`` pre-processor variables are expanded from ``<X-PRE-PROCESS cmd="set">`` lines in the
tree and from the ``variables`` given to ``load_config`` (the latter win).
"""

from __future__ import annotations

import ipaddress
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_VARIABLES = {
    "kallglot_sip_ip": "127.0.0.1",
    "kallglot_rtp_ip": "127.0.0.1",
    "kallglot_ext_sip_ip": "127.0.0.1",
    "kallglot_ext_rtp_ip": "127.0.0.1",
    "kallglot_sip_port": "5060",
    "kallglot_tls_port": "5061",
    "local_ip_v4": "127.0.0.1",
    "domain": "127.0.0.1",
}


@dataclass
class Profile:
    name: str
    params: dict[str, str]

    def param(self, name: str, default: str = "") -> str:
        return self.params.get(name, default)

    def flag(self, name: str, default: bool = False) -> bool:
        raw = self.params.get(name)
        return default if raw is None else raw.strip().lower() in ("true", "yes", "on", "1")

    @property
    def ip(self) -> str:
        return self.param("sip-ip", "127.0.0.1")

    @property
    def tls(self) -> bool:
        # sofia.c 1.10.12 reads "tls"; "enable-tls" is what the sample configuration says.
        return self.flag("enable-tls") or self.flag("tls")

    def transports(self) -> dict[str, int]:
        """Bound transports → port, the way sofia binds them (sip-port: UDP and TCP unless
        ``bind-params`` names a transport; ``tls-only`` drops both; TLS on ``tls-sip-port``)."""
        out: dict[str, int] = {}
        if not (self.tls and self.flag("tls-only")):
            port = int(self.param("sip-port", "5060"))
            bind = self.param("bind-params").lower()
            m = re.search(r"transport=([a-z,]+)", bind)
            plain = m.group(1).split(",") if m else ["udp", "tcp"]
            for t in plain:
                if t in ("udp", "tcp"):
                    out[t] = port
        if self.tls:
            out["tls"] = int(self.param("tls-sip-port", "5061"))
        return out

    @property
    def codec_prefs(self) -> list[str]:
        raw = self.param("inbound-codec-prefs") or self.param("codec-prefs") or "PCMU,PCMA"
        return [c.strip() for c in raw.split(",") if c.strip()]


@dataclass
class User:
    id: str
    domain: str
    params: dict[str, str]
    variables: list[tuple[str, str]]


@dataclass
class AclList:
    name: str
    default_allow: bool
    nodes: list[tuple[bool, ipaddress.IPv4Network | ipaddress.IPv6Network]]

    def allows(self, ip: str) -> bool:
        addr = ipaddress.ip_address(ip)
        for allow, net in self.nodes:
            if addr.version == net.version and addr in net:
                return allow
        return self.default_allow


@dataclass
class Condition:
    """One ``<condition>`` as mod_dialplan_xml's parse_exten reads it: ``field`` ("" = an
    absolute condition), ``expression``, ``break`` (on-false unless on-true/always/never), its
    own actions and anti-actions, and nested conditions (tried only when this one proceeds)."""

    field: str
    expression: str
    actions: list[tuple[str, str]] = field(default_factory=list)
    anti_actions: list[tuple[str, str]] = field(default_factory=list)
    break_on: str = "on-false"
    children: list[Condition] = field(default_factory=list)


@dataclass
class Extension:
    name: str
    conditions: list[Condition]
    actions: list[tuple[str, str]]  # every condition's actions, in order (for inspection)
    anti_actions: list[tuple[str, str]] = field(default_factory=list)
    cont: bool = False  # continue="true": hunting goes on after this extension matched


@dataclass
class FsConfig:
    profiles: dict[str, Profile] = field(default_factory=dict)
    domains: dict[str, dict[str, User]] = field(default_factory=dict)
    acls: dict[str, AclList] = field(default_factory=dict)
    contexts: dict[str, list[Extension]] = field(default_factory=dict)

    def find_user(self, domain: str, user: str) -> User | None:
        return self.domains.get(domain, {}).get(user)

    def acl_allows(self, name: str, ip: str) -> bool:
        """FreeSWITCH's built-in lists plus the configured ones; an unknown list denies."""
        if name in ("any_v4.auto", "any_v6.auto"):
            return True
        if name in ("loopback.auto",):
            return ipaddress.ip_address(ip).is_loopback
        if name in ("rfc1918.auto", "localnet.auto", "nat.auto"):
            return ipaddress.ip_address(ip).is_private
        acl = self.acls.get(name)
        return acl.allows(ip) if acl is not None else False


_VAR = re.compile(r"\$\$\{([A-Za-z0-9_]+)\}")


def _collect_sets(text: str, into: dict[str, str]) -> None:
    for m in re.finditer(r'<X-PRE-PROCESS\s+cmd="set"\s+data="([^"=]+)=([^"]*)"', text):
        into.setdefault(m.group(1), m.group(2))


def load_config(conf_dir: Path, variables: dict[str, str] | None = None) -> FsConfig:
    files = sorted(p for p in Path(conf_dir).rglob("*.xml") if p.is_file())
    pre: dict[str, str] = {}
    texts = {p: p.read_text() for p in files}
    for text in texts.values():
        _collect_sets(text, pre)
    values = {**DEFAULT_VARIABLES, **pre, **(variables or {})}
    cfg = FsConfig()
    for path, text in texts.items():
        expanded = _VAR.sub(lambda m: values.get(m.group(1), ""), text)
        # Pre-processor lines are not XML FreeSWITCH keeps; drop them like its pre-processor does.
        expanded = re.sub(r"<X-PRE-PROCESS[^>]*/>", "", expanded)
        try:
            root = ET.fromstring(expanded)  # noqa: S314
        except ET.ParseError as exc:
            raise ValueError(f"{path}: not well-formed XML: {exc}") from exc
        _scan(root, cfg)
    return cfg


def _params(el: ET.Element | None) -> dict[str, str]:
    if el is None:
        return {}
    return {p.get("name", ""): p.get("value", "") for p in el.findall("param")}


def _scan(root: ET.Element, cfg: FsConfig) -> None:
    for prof in root.iter("profile"):
        name = prof.get("name")
        if name and prof.find("settings") is not None:
            cfg.profiles[name] = Profile(name, _params(prof.find("settings")))
    for dom in root.iter("domain"):
        dname = dom.get("name")
        users = dom.find("users")
        if not dname or users is None:
            continue
        dom_vars = [(v.get("name", ""), v.get("value", "")) for v in dom.findall("variables/variable")]
        bucket = cfg.domains.setdefault(dname, {})
        for u in users.iter("user"):
            uid = u.get("id")
            if not uid:
                continue
            uvars = [(v.get("name", ""), v.get("value", "")) for v in u.findall("variables/variable")]
            bucket[uid] = User(uid, dname, _params(u.find("params")), dom_vars + uvars)
    for lst in root.iter("list"):
        name = lst.get("name")
        if not name:
            continue
        nodes = []
        for node in lst.findall("node"):
            cidr = node.get("cidr")
            if cidr:
                nodes.append((node.get("type", "allow") == "allow", ipaddress.ip_network(cidr, strict=False)))
        cfg.acls[name] = AclList(name, lst.get("default", "deny") == "allow", nodes)
    for ctx in root.iter("context"):
        name = ctx.get("name")
        if not name:
            continue
        exts = cfg.contexts.setdefault(name, [])
        for ext in ctx.findall("extension"):
            conds = [_condition(c) for c in ext.findall("condition")]
            actions = [a for c in conds for a in c.actions]
            anti = [a for c in conds for a in c.anti_actions]
            cont = (ext.get("continue") or "").strip().lower() in ("true", "yes", "on", "1")
            exts.append(Extension(ext.get("name", ""), conds, actions, anti, cont))


def _app(el: ET.Element) -> tuple[str, str]:
    """An action's application and data: the element's text when it has some, else ``data``."""
    text = el.text or ""
    return el.get("application", ""), text if text.strip() else el.get("data", "")


def _condition(el: ET.Element) -> Condition:
    brk = (el.get("break") or "on-false").lower()
    expression = el.get("expression", "")
    nested = el.find("expression")
    if nested is not None:
        expression = nested.text or ""
    return Condition(el.get("field", ""), expression,
                     actions=[_app(a) for a in el.findall("action")],
                     anti_actions=[_app(a) for a in el.findall("anti-action")],
                     break_on=brk if brk in ("on-true", "on-false", "always", "never") else "on-false",
                     children=[_condition(c) for c in el.findall("condition")])
