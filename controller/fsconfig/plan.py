"""Which ESL commands a config change needs: a pure function of the old and new trees.

Rules (DESIGN.md §4; replies in tests/fixtures/freeswitch-1.10.12/README.md):
- directory or dialplan changed → ``reloadxml``;
- ACL lists changed → ``reloadacl`` (after ``reloadxml``, which it needs to see the new lists);
- profile parameters or gateways changed → ``sofia profile P rescan``; a gateway that was
  removed or changed is first dropped with ``killgw`` (rescan only adds gateways it does not
  already run, so a changed gateway is re-created from the new XML that way);
- bind ports, transports or TLS changed → ``sofia profile P restart`` (which re-reads the XML and
  rebuilds every gateway, so it replaces killgw/rescan). A restart ends every call on the shared
  profile, so only install-wide settings feed those parameters (KALLGLOT_SIP_TRANSPORTS,
  KALLGLOT_TLS_CERT_DIR, the FreeSWITCH IP/port variables); no tenant's change can cause one;
- no applied tree before (first render) → ``sofia profile P restart`` (→ ``start`` when the
  profile does not run; see plan_reload).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from controller.fsconfig.render import RenderedFile
from controller.fsconfig.validate import RenderValidationError, parse_tree

# Profile settings that only take effect when the profile rebinds its sockets. All of them are
# install-wide. ``apply-inbound-acl`` is not one: a rescan re-reads it (sofia.c config_sofia
# resets acl_count before parsing a running profile's settings), and it is always rendered with
# the same list name anyway.
RESTART_PARAMS = frozenset({
    "sip-ip", "rtp-ip", "ext-sip-ip", "ext-rtp-ip", "sip-port", "bind-params",
    "tls", "tls-only", "tls-sip-port", "tls-bind-params", "tls-cert-dir", "tls-version",
    "tls-ciphers", "tls-passphrase", "tls-verify-policy",
})
_VAR_REF = re.compile(r"\$\$\{([A-Za-z0-9_]+)\}", re.ASCII)


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True)
class ConfigSnapshot:
    """What the diff compares; secrets appear only as digests."""

    present: bool = False
    parsed: bool = False
    files: Mapping[str, str] = field(default_factory=dict)  # path -> sha256 of the text
    directory: str = ""
    dialplan: str = ""
    acl: str = ""
    profile: str | None = None
    profile_params: Mapping[str, str] = field(default_factory=dict)
    gateways: Mapping[str, str] = field(default_factory=dict)  # name -> digest of params


def snapshot(files: Mapping[str, RenderedFile]) -> ConfigSnapshot:
    """Summarize a rendered tree; a tree that no longer parses is marked ``parsed=False``."""
    digests = {path: hashlib.sha256(f.text.encode()).hexdigest() for path, f in files.items()}
    if not files:
        return ConfigSnapshot()
    try:
        tree = parse_tree(files)
    except RenderValidationError:
        return ConfigSnapshot(present=True, parsed=False, files=digests)

    def text_digest(path: str) -> str:
        return digests.get(path, "")

    profile_el = tree.roots["sip_profile.xml"].find("profile") if "sip_profile.xml" in tree.roots else None
    params: dict[str, str] = {}
    if profile_el is not None:
        settings = profile_el.find("settings")
        if settings is not None:
            params = {p.get("name", ""): p.get("value", "") for p in settings.iter("param")}
    gateways: dict[str, str] = {}
    gw_root = tree.roots.get("gateways.xml")
    for gw in gw_root.findall("gateway") if gw_root is not None else []:
        gw_params = {p.get("name", ""): p.get("value", "") for p in gw.iter("param")}
        # A password change is a gateway change: fold in the referenced secret's digest.
        refs = {name: _digest(tree.secrets.get(name)) for name in _VAR_REF.findall(json.dumps(gw_params))}
        gateways[gw.get("name", "")] = _digest([gw_params, refs])
    return ConfigSnapshot(
        present=True,
        parsed=True,
        files=digests,
        directory=text_digest("directory.xml"),
        dialplan=text_digest("dialplan.xml"),
        acl=text_digest("acl.xml"),
        profile=profile_el.get("name") if profile_el is not None else None,
        profile_params=params,
        gateways=gateways,
    )


@dataclass(frozen=True)
class ReloadPlan:
    files_changed: tuple[str, ...]
    commands: tuple[str, ...]
    restart: bool  # the plan rebinds the profile (restart or first start)

    @property
    def empty(self) -> bool:
        return not self.commands


def plan_reload(old: ConfigSnapshot, new: ConfigSnapshot) -> ReloadPlan:
    """The ESL commands that bring FreeSWITCH from ``old`` to ``new``, in order."""
    changed = tuple(sorted(
        p for p in set(old.files) | set(new.files) if old.files.get(p) != new.files.get(p)
    ))
    if not changed or new.profile is None:
        return ReloadPlan(changed, (), False)
    profile = new.profile
    sofia = f"sofia profile {profile}"
    if not old.parsed:
        # First render, or a tree we cannot read: reload everything and rebuild the profile.
        # Always "restart": on a running profile mod_sofia's "start" is only a rescan (it answers
        # "started successfully" without rebinding), while "restart" of a profile that does not
        # run answers "Invalid Profile", which apply_commands turns into "start".
        return ReloadPlan(changed, ("reloadxml", "reloadacl", f"{sofia} restart"), True)

    commands: list[str] = []
    acl_changed = old.acl != new.acl
    if acl_changed or old.directory != new.directory or old.dialplan != new.dialplan:
        commands.append("reloadxml")
    if acl_changed:
        commands.append("reloadacl")

    if old.profile != profile:
        if old.profile:
            commands.append(f"sofia profile {old.profile} stop")
        commands.append(f"{sofia} start")
        return ReloadPlan(changed, tuple(commands), True)

    param_names = set(old.profile_params) | set(new.profile_params)
    changed_params = {n for n in param_names if old.profile_params.get(n) != new.profile_params.get(n)}
    if changed_params & RESTART_PARAMS:
        commands.append(f"{sofia} restart")
        return ReloadPlan(changed, tuple(commands), True)

    removed = sorted(set(old.gateways) - set(new.gateways))
    modified = sorted(n for n in set(old.gateways) & set(new.gateways) if old.gateways[n] != new.gateways[n])
    added = sorted(set(new.gateways) - set(old.gateways))
    commands.extend(f"{sofia} killgw {name}" for name in removed + modified)
    if changed_params or modified or added:
        commands.append(f"{sofia} rescan")
    return ReloadPlan(changed, tuple(commands), False)


def with_profile_restart(plan: ReloadPlan, profile: str) -> ReloadPlan:
    """``plan`` plus a rebuild of ``profile`` that nothing in the files asked for: an operator
    replaced the TLS certificate files (sofia reads them only when the profile starts). The
    restart re-reads the XML and every gateway, so the plan's other sofia commands are dropped."""
    if plan.restart:
        return plan
    kept = tuple(c for c in plan.commands if not c.startswith("sofia profile "))
    return ReloadPlan(plan.files_changed, (*kept, f"sofia profile {profile} restart"), True)
