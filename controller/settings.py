"""Runtime configuration: environment variables (``KALLGLOT_*``), overridable by CLI flags.

Every key, its default and its meaning is listed in README.md ("Configuration"); keep the
two in step.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from urllib.parse import urlsplit


class SettingsError(ValueError):
    """A configuration value that cannot be used; the message names the variable."""


def _env_float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None


# Transports the SIP profile can bind, in the order they are reported.
SIP_TRANSPORTS: tuple[str, ...] = ("udp", "tcp", "tls")


def parse_sip_transports(raw: str) -> tuple[str, ...]:
    """``KALLGLOT_SIP_TRANSPORTS`` ("udp,tcp,tls", any order) → the transports, in SIP_TRANSPORTS
    order; raises SettingsError naming the variable for an empty list or an unknown word."""
    words = [w.strip().lower() for w in raw.split(",") if w.strip()]
    unknown = [w for w in words if w not in SIP_TRANSPORTS]
    if unknown or not words:
        raise SettingsError(
            f"KALLGLOT_SIP_TRANSPORTS must list one or more of {', '.join(SIP_TRANSPORTS)}, got {raw!r}")
    return tuple(t for t in SIP_TRANSPORTS if t in words)


def parse_retry_schedule(raw: str) -> tuple[float, ...]:
    """``KALLGLOT_WEBHOOK_RETRY_SCHEDULE`` ("0,60,300") → delays in seconds, one per attempt."""
    try:
        delays = tuple(float(w) for w in raw.split(",") if w.strip())
    except ValueError:
        delays = ()
    if not delays or any(not 0 <= d <= 7 * 86400 for d in delays):
        raise SettingsError(
            "KALLGLOT_WEBHOOK_RETRY_SCHEDULE must be comma-separated seconds (0 to 604800), "
            f"one per attempt, got {raw!r}")
    return delays


# DESIGN.md §3: a session's region is one of these; each may have its own pool of bridges.
REGIONS: tuple[str, ...] = ("eu", "us", "ap")
# mod_audio_stream accepts only letters, digits, '-' and '.' in the URL's host part.
_BRIDGE_HOST = re.compile(r"[A-Za-z0-9.-]+")


def parse_bridge_url(url: str, variable: str = "KALLGLOT_BRIDGE_URL") -> str:
    """One bridge base URL (``ws[s]://host[:port][/prefix]``), without a trailing slash."""
    parts = urlsplit(url)
    try:
        port_ok = parts.port is None or 0 < parts.port <= 65535
    except ValueError:
        port_ok = False
    if parts.scheme not in ("ws", "wss") or not parts.hostname or not port_ok \
            or not _BRIDGE_HOST.fullmatch(parts.hostname) or parts.query or parts.fragment:
        raise SettingsError(
            f"{variable}: {url[:80]!r} is not a ws:// or wss:// URL whose host has only letters, digits, "
            "'-' and '.'")
    return url.rstrip("/")


def parse_bridge_pools(raw: str) -> dict[str, tuple[str, ...]]:
    """``KALLGLOT_BRIDGE_POOLS`` ("eu=ws://a:8765,ws://b:8765;us=ws://c:8765") → region → bridge
    URLs in the order given; "" → {} (KALLGLOT_BRIDGE_URL serves every region)."""
    pools: dict[str, tuple[str, ...]] = {}
    for entry in (e.strip() for e in raw.split(";")):
        if not entry:
            continue
        region, sep, urls = entry.partition("=")
        region = region.strip().lower()
        if not sep or region not in REGIONS:
            raise SettingsError(
                f"KALLGLOT_BRIDGE_POOLS: {entry[:80]!r} must be <region>=<ws url>[,<ws url>...] "
                f"with a region of {', '.join(REGIONS)}")
        if region in pools:
            raise SettingsError(f"KALLGLOT_BRIDGE_POOLS names region {region} twice")
        bridges = tuple(dict.fromkeys(
            parse_bridge_url(u.strip(), "KALLGLOT_BRIDGE_POOLS") for u in urls.split(",") if u.strip()))
        if not bridges:
            raise SettingsError(f"KALLGLOT_BRIDGE_POOLS: region {region} lists no bridge URL")
        pools[region] = bridges
    if raw.strip() and not pools:
        raise SettingsError("KALLGLOT_BRIDGE_POOLS must be <region>=<ws url>[,...][;<region>=...], got "
                            f"{raw[:80]!r}")
    return pools


def _env_int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None


def store_target(raw: str) -> Path | str:
    """``KALLGLOT_DB``: a ``postgresql://`` URL stays a string, anything else is a SQLite path."""
    return raw if raw.startswith(("postgresql://", "postgres://")) else Path(raw)


@dataclass(frozen=True)
class Settings:
    # A SQLite file path, or a postgresql:// URL (kept as a string: Path would fold its "//").
    db_path: Path | str = Path("kallglot.db")
    sip_domain: str = "sip.kallglot.local"
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    admin_token: str = ""
    esl_host: str = "127.0.0.1"
    esl_port: int = 8021
    esl_password: str = "ClueCon"  # noqa: S105 -- FreeSWITCH's stock default; set it in production
    controller_host: str = "127.0.0.1"
    controller_port: int = 8084
    # Address FreeSWITCH's dialplan uses to reach the controller's outbound socket.
    controller_address: str = "127.0.0.1:8084"
    # The controller's Prometheus listener (GET /metrics); port 0 picks a free one.
    controller_metrics_host: str = "127.0.0.1"
    controller_metrics_port: int = 9464
    bridge_host: str = "127.0.0.1"
    bridge_port: int = 8765
    # Base URL the controller hands to mod_audio_stream (host without underscores).
    bridge_url: str = "ws://127.0.0.1:8765"
    # Bridges per session region (docs/controller.md "Bridge pools"); empty: bridge_url for all.
    bridge_pools: str = ""
    # How often the controller probes each pooled bridge's /healthz.
    bridge_health_interval_s: float = 5.0
    fs_conf_dir: Path = Path("freeswitch-conf")
    sip_profile: str = "kallglot"
    tls_cert_dir: str = "/etc/freeswitch/tls"
    # Transports the SIP profile binds for the whole install (install-wide, never per tenant:
    # changing what is bound restarts the shared profile, which ends every live call on it).
    sip_transports: str = "udp,tcp,tls"
    # IPs/CIDRs of the Kamailio front (docs/kamailio.md): only calls from these addresses are
    # judged by the caller's address the front stamps (X-Kallglot-Source-IP, sofia's X-AUTH-IP).
    sip_trusted_proxies: str = ""
    # How long a reload waits for a (re)started sofia profile to run with all its transports.
    profile_ready_timeout_s: float = 20.0
    rtp_start_port: int = 16384
    rtp_end_port: int = 16484
    log_level: str = "INFO"
    # Webhooks (docs/webhooks.md): private/loopback/link-local… targets are refused unless this
    # install allows them (e.g. a receiver on the same host or LAN).
    webhook_allow_private_targets: bool = False
    webhook_timeout_s: float = 10.0
    # Delay in seconds before each attempt, measured from the previous one; then ``failed``.
    webhook_retry_schedule: str = "0,60,300,1800,7200,18000,36000,86400"
    webhook_poll_interval_s: float = 1.0
    # Run the delivery worker inside ``kallglot api`` (off when ``kallglot webhooks`` runs it).
    webhook_worker: bool = True
    api_log_retention_days: int = 30
    # Several nodes sharing one PostgreSQL store (docs/multi-node.md). The node is one
    # FreeSWITCH with its controller; its id defaults to the ESL address (KALLGLOT_ESL_HOST:PORT),
    # so the controller and the API of one node agree without configuration.
    node_id: str = ""
    node_region: str = ""
    node_sip_address: str = ""
    node_heartbeat_s: float = 5.0
    # A node silent this long is dead: a live node ends its legs (frees their call slots).
    node_dead_after_s: float = 30.0
    # Which FreeSWITCH a reload tells: "all" = every up node (they share KALLGLOT_FS_CONF_DIR),
    # "local" = only KALLGLOT_ESL_HOST/PORT (each node renders its own conf dir).
    reload_nodes: str = "all"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Read ``KALLGLOT_<FIELD>`` for every field; ``overrides`` (CLI flags) win when not None."""
        env = dict(os.environ if env is None else env)
        values: dict[str, object] = {}
        for f in fields(cls):
            name = "KALLGLOT_" + f.name.upper()
            if f.name == "db_path":
                name = "KALLGLOT_DB"
            default = f.default
            raw = env.get(name)
            if isinstance(default, bool):
                values[f.name] = default if raw in (None, "") else raw.lower() in ("1", "true", "yes")
            elif isinstance(default, int):
                values[f.name] = _env_int(env, name, default)
            elif isinstance(default, float):
                values[f.name] = _env_float(env, name, default)
            elif f.name == "db_path":
                values[f.name] = store_target(raw) if raw else default
            elif isinstance(default, Path):
                values[f.name] = Path(raw) if raw else default
            else:
                values[f.name] = raw if raw not in (None, "") else default
        settings = cls(**values)  # type: ignore[arg-type]
        clean = {k: v for k, v in overrides.items() if v is not None}
        if "db_path" in clean:
            clean["db_path"] = store_target(str(clean["db_path"]))
        if "fs_conf_dir" in clean:
            clean["fs_conf_dir"] = Path(str(clean["fs_conf_dir"]))
        if clean:
            settings = replace(settings, **clean)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        for name in ("api_port", "esl_port", "controller_port", "controller_metrics_port", "bridge_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise SettingsError(f"KALLGLOT_{name.upper()} must be 0-65535, got {port}")
        if not self.sip_domain or any(c.isspace() for c in self.sip_domain):
            raise SettingsError("KALLGLOT_SIP_DOMAIN must be a host name")
        if not self.bridge_url.startswith(("ws://", "wss://")):
            raise SettingsError("KALLGLOT_BRIDGE_URL must start with ws:// or wss://")
        parse_bridge_pools(self.bridge_pools)
        if not 0 < self.bridge_health_interval_s <= 300:
            raise SettingsError("KALLGLOT_BRIDGE_HEALTH_INTERVAL_S must be more than 0 and at most 300 (s)")
        if self.rtp_start_port > self.rtp_end_port:
            raise SettingsError("KALLGLOT_RTP_START_PORT must not exceed KALLGLOT_RTP_END_PORT")
        parse_sip_transports(self.sip_transports)
        for word in (w.strip() for w in self.sip_trusted_proxies.split(",")):
            try:
                if word:
                    ipaddress.ip_network(word, strict=False)
            except ValueError:
                raise SettingsError(
                    f"KALLGLOT_SIP_TRUSTED_PROXIES: {word[:60]!r} is not an IP address or CIDR") from None
        if not 0 < self.profile_ready_timeout_s <= 600:
            raise SettingsError("KALLGLOT_PROFILE_READY_TIMEOUT_S must be more than 0 and at most 600 (s)")
        if not 0 < self.webhook_timeout_s <= 300:
            raise SettingsError("KALLGLOT_WEBHOOK_TIMEOUT_S must be more than 0 and at most 300 (s)")
        if not 0 < self.webhook_poll_interval_s <= 60:
            raise SettingsError("KALLGLOT_WEBHOOK_POLL_INTERVAL_S must be more than 0 and at most 60 (s)")
        parse_retry_schedule(self.webhook_retry_schedule)
        if self.api_log_retention_days < 1:
            raise SettingsError("KALLGLOT_API_LOG_RETENTION_DAYS must be at least 1")
        if not 0 < self.node_heartbeat_s <= 60:
            raise SettingsError("KALLGLOT_NODE_HEARTBEAT_S must be more than 0 and at most 60 (s)")
        # Two missed heartbeats at least, or a merely slow node would lose its calls' slots.
        if self.node_dead_after_s < 3 * self.node_heartbeat_s:
            raise SettingsError("KALLGLOT_NODE_DEAD_AFTER_S must be at least 3 × KALLGLOT_NODE_HEARTBEAT_S")
        if any(c.isspace() for c in self.node_id):
            raise SettingsError("KALLGLOT_NODE_ID must not contain spaces")
        if self.reload_nodes not in ("all", "local"):
            raise SettingsError("KALLGLOT_RELOAD_NODES must be all or local")

    @property
    def node_name(self) -> str:
        """This process's node id: KALLGLOT_NODE_ID, else the ESL address of its FreeSWITCH."""
        return self.node_id or f"{self.esl_host}:{self.esl_port}"
