"""Reads the renderer's input straight from the store tables (sip_settings, connections,
phone_numbers; schema in controller/store/migrations.py) and validates every field."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

from controller.fsconfig.model import (
    CODECS,
    TRANSPORTS,
    ConfigInput,
    ConfigInputError,
    Gateway,
    ManagedNumber,
    OrgSip,
    Rejection,
    check_a1_hash,
    check_cidr,
    check_e164,
    check_host,
    check_id,
    check_secret,
    check_sip_user,
    check_subset,
)
from controller.settings import Settings, SettingsError, parse_sip_transports
from controller.store import Store

_PROFILE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$", re.ASCII)


def _json(raw: Any, field_name: str, default: Any) -> Any:
    if raw is None:
        return default
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        raise ConfigInputError(field_name, "is not valid JSON") from None


def org_from_row(row: Any) -> OrgSip:
    org_id = check_id(row["org_id"], "org", "sip_settings.org_id")
    where = f"sip_settings[{org_id}]"
    allowlist = _json(row["ip_allowlist"], f"{where}.ip_allowlist", [])
    if not isinstance(allowlist, list):
        raise ConfigInputError(f"{where}.ip_allowlist", "must be a list")
    cidrs = [check_cidr(c, f"{where}.ip_allowlist[{i}]") for i, c in enumerate(allowlist)]
    return OrgSip(
        org_id=org_id,
        username=check_sip_user(row["username"], f"{where}.username"),
        a1_hash=check_a1_hash(row["a1_hash"], f"{where}.a1_hash"),
        ip_allowlist=tuple(dict.fromkeys(cidrs)),
        allowed_transports=check_subset(
            _json(row["allowed_transports"], f"{where}.allowed_transports", []),
            TRANSPORTS, f"{where}.allowed_transports",
        ),
        allowed_codecs=check_subset(
            _json(row["allowed_codecs"], f"{where}.allowed_codecs", []), CODECS, f"{where}.allowed_codecs"
        ),
    )


def gateway_from_row(connection_id: str, sip: Any) -> Gateway | None:
    where = f"connections[{connection_id}].sip"
    if sip is None:
        return None
    if not isinstance(sip, dict):
        raise ConfigInputError(where, "must be an object")
    register = sip.get("register", False)
    if not isinstance(register, bool):
        raise ConfigInputError(f"{where}.register", "must be true or false")
    return Gateway(
        connection_id=connection_id,
        proxy=check_host(sip.get("host"), f"{where}.host", allow_port=True),
        username=check_sip_user(sip.get("username"), f"{where}.username"),
        password=check_secret(sip.get("password"), f"{where}.password"),
        register=register,
    )


def load_config_input(store: Store, settings: Settings) -> ConfigInput:
    """One consistent read of the three tables (a read transaction), validated. Records that
    fail validation are left out and listed in ``ConfigInput.rejected``."""
    with store.lock:
        conn = store.conn
        conn.execute("BEGIN")
        try:
            sip_rows = conn.execute(
                "SELECT * FROM sip_settings WHERE enabled = 1 ORDER BY org_id"
            ).fetchall()
            conn_rows = conn.execute(
                "SELECT id, sip, inbound_addresses FROM connections WHERE status = 'active' ORDER BY id"
            ).fetchall()
            number_rows = conn.execute(
                "SELECT id, number FROM phone_numbers WHERE status = 'active' ORDER BY number"
            ).fetchall()
        finally:
            conn.execute("COMMIT")

    # One tenant's bad record must not freeze everyone's configuration: it is left out (failing
    # closed) and reported, while install-wide settings still fail the whole render.
    rejected: list[ConfigInputError] = []
    orgs: list[OrgSip] = []
    skipped: list[str] = []
    for row in sip_rows:
        if not row["a1_hash"]:
            skipped.append(str(row["org_id"]))
            continue
        try:
            # Any bad field drops the whole user: dropping only a bad CIDR could empty the
            # allowlist, which would mean "no IP filtering".
            orgs.append(org_from_row(row))
        except ConfigInputError as exc:
            rejected.append(exc)

    gateways: list[Gateway] = []
    provider_cidrs: list[str] = []
    for row in conn_rows:
        try:
            connection_id = check_id(row["id"], "pcon", "connections.id")
        except ConfigInputError as exc:
            rejected.append(exc)
            continue
        try:  # the gateway and the trusted addresses are independent: check each on its own
            sip = _json(row["sip"], f"connections[{connection_id}].sip", None)
            gateway = gateway_from_row(connection_id, sip)
        except ConfigInputError as exc:
            rejected.append(exc)
            gateway = None
        if gateway is not None:
            gateways.append(gateway)
        where = f"connections[{connection_id}].inbound_addresses"
        try:
            addresses = _json(row["inbound_addresses"], where, [])
            if not isinstance(addresses, list):
                raise ConfigInputError(where, "must be a list")
        except ConfigInputError as exc:
            rejected.append(exc)
            continue
        for i, address in enumerate(addresses):
            try:  # a trusted address left out only means its calls get challenged
                provider_cidrs.append(check_cidr(address, f"{where}[{i}]"))
            except ConfigInputError as exc:
                rejected.append(exc)

    numbers: list[ManagedNumber] = []
    for row in number_rows:
        try:
            numbers.append(ManagedNumber(
                number_id=check_id(row["id"], "pn", "phone_numbers.id"),
                number=check_e164(row["number"], f"phone_numbers[{row['id']}].number"),
            ))
        except ConfigInputError as exc:
            rejected.append(exc)
    cfg = build_config_input(settings, orgs, gateways, provider_cidrs, numbers, skipped)
    return replace(cfg, rejected=tuple(Rejection(e.field, e.reason) for e in rejected))


def build_config_input(
    settings: Settings,
    orgs: list[OrgSip],
    gateways: list[Gateway],
    provider_cidrs: list[str],
    numbers: list[ManagedNumber],
    skipped: list[str] | None = None,
) -> ConfigInput:
    """Validate the install-wide settings and assemble the input in a stable order."""
    host, _, port = settings.controller_address.rpartition(":")
    if not host or not port:
        raise ConfigInputError("KALLGLOT_CONTROLLER_ADDRESS", "must be host:port")
    if not _PROFILE_NAME.match(settings.sip_profile):
        raise ConfigInputError("KALLGLOT_SIP_PROFILE", "must be 1-32 letters, digits, '_' or '-'")
    check_host(settings.controller_address, "KALLGLOT_CONTROLLER_ADDRESS", allow_port=True)
    tls_dir = settings.tls_cert_dir
    if not tls_dir.startswith("/") or any(ch in tls_dir for ch in "\"'<>&$\n\r\t"):
        raise ConfigInputError("KALLGLOT_TLS_CERT_DIR", "must be an absolute path without quotes or $")
    try:
        bound = parse_sip_transports(settings.sip_transports)
    except SettingsError as exc:
        name = "KALLGLOT_SIP_TRANSPORTS"
        raise ConfigInputError(name, str(exc).removeprefix(name + " ")) from None
    proxies = [w.strip() for w in settings.sip_trusted_proxies.split(",") if w.strip()]
    trusted = tuple(dict.fromkeys(
        check_cidr(p, f"KALLGLOT_SIP_TRUSTED_PROXIES[{i}]") for i, p in enumerate(proxies)))
    return ConfigInput(
        sip_domain=check_host(settings.sip_domain, "KALLGLOT_SIP_DOMAIN"),
        transports=tuple(t for t in TRANSPORTS if t in bound),
        profile=settings.sip_profile,
        controller_address=settings.controller_address,
        tls_cert_dir=tls_dir,
        orgs=tuple(sorted(orgs, key=lambda o: o.org_id)),
        gateways=tuple(sorted(gateways, key=lambda g: g.connection_id)),
        provider_cidrs=tuple(dict.fromkeys(provider_cidrs)),
        trusted_proxies=trusted,
        numbers=tuple(sorted(numbers, key=lambda n: n.number)),
        skipped=tuple(skipped or ()),
    )
