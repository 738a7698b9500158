"""Checks a rendered tree before it goes live: every file parses, and the cross-file rules
FreeSWITCH relies on hold (unique names, credentials present, ACL references resolve)."""

from __future__ import annotations

import ipaddress
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field

from controller.fsconfig.model import ConfigInput
from controller.fsconfig.render import RenderedFile

_ACL_NAME = re.compile(r"^[A-Za-z0-9_]{1,128}$", re.ASCII)
_VAR_REF = re.compile(r"^\$\$\{([A-Za-z0-9_]+)\}$", re.ASCII)
_A1 = re.compile(r"^[0-9a-f]{32}$", re.ASCII)
_SET_DATA = re.compile(r"^([A-Za-z0-9_]+)=(.*)$", re.ASCII | re.DOTALL)


class RenderValidationError(ValueError):
    """The rendered tree breaks a rule; ``problems`` lists each one (file: what)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("rendered configuration is invalid: " + "; ".join(problems))
        self.problems = problems


@dataclass
class ParsedTree:
    """The parts of a rendered tree that validation and the reload diff look at."""

    roots: dict[str, ET.Element] = field(default_factory=dict)
    acl_lists: dict[str, list[str]] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)  # variable -> value (in memory only)


def _params(element: ET.Element) -> list[tuple[str, str]]:
    return [(p.get("name", ""), p.get("value", "")) for p in element.iter("param")]


def parse_tree(files: Mapping[str, RenderedFile]) -> ParsedTree:
    """Parse every file; raises RenderValidationError naming each file that does not parse."""
    tree = ParsedTree()
    problems: list[str] = []
    for path, rendered in files.items():
        try:
            # Our own rendering (values escaped, so no DTD or entity can appear) or our previous one.
            root = ET.fromstring(rendered.text)  # noqa: S314
        except ET.ParseError as exc:
            problems.append(f"{path}: not well-formed XML ({exc})")
            continue
        if root.tag != "include":
            problems.append(f"{path}: root element must be <include>, got <{root.tag}>")
            continue
        tree.roots[path] = root
    if problems:
        raise RenderValidationError(problems)
    acl = tree.roots.get("acl.xml")
    if acl is not None:
        for lst in acl.findall("list"):
            tree.acl_lists.setdefault(lst.get("name", ""), []).extend(
                n.get("cidr", "") for n in lst.findall("node")
            )
    for path, root in tree.roots.items():
        if files[path].secret:
            for el in root:
                match = _SET_DATA.match(el.get("data", ""))
                if el.tag == "X-PRE-PROCESS" and el.get("cmd") == "set" and match:
                    tree.secrets[match.group(1)] = match.group(2)
    return tree


def _check_acl(tree: ParsedTree, problems: list[str]) -> None:
    acl = tree.roots["acl.xml"]
    seen: set[str] = set()
    for lst in acl.findall("list"):
        name = lst.get("name", "")
        if not _ACL_NAME.match(name):
            problems.append(f"acl.xml: invalid list name {name!r}")
        if name.lower() in seen:
            problems.append(f"acl.xml: duplicate list name {name!r}")
        seen.add(name.lower())
        if lst.get("default") != "deny":
            problems.append(f"acl.xml: list {name!r} must default to deny")
        nodes = lst.findall("node")
        # The provider list may be empty (no provider address yet: it allows nobody, as
        # switch_network_list_validate_ip_port_token returns the list's default); an
        # organization's list exists only for a non-empty allowlist.
        if not nodes and name != ConfigInput.PROVIDER_ACL:
            problems.append(f"acl.xml: list {name!r} is empty")
        for node in nodes:
            try:
                ipaddress.ip_network(node.get("cidr", ""), strict=False)
            except ValueError:
                problems.append(f"acl.xml: list {name!r} has an invalid cidr {node.get('cidr')!r}")


def _check_directory(tree: ParsedTree, problems: list[str]) -> None:
    domains = tree.roots["directory.xml"].findall("domain")
    if len(domains) != 1:
        problems.append(f"directory.xml: expected one <domain>, found {len(domains)}")
        return
    seen: set[str] = set()
    for user in domains[0].iter("user"):
        uid = user.get("id", "")
        if not uid or uid.lower() in seen:
            problems.append(f"directory.xml: user id {uid!r} is empty or not unique")
        seen.add(uid.lower())
        params = dict(_params(user))
        if "password" in params:
            problems.append(f"directory.xml: user {uid!r} carries a password; only a1-hash is allowed")
        if not _A1.match(params.get("a1-hash", "")):
            problems.append(f"directory.xml: user {uid!r} has no valid a1-hash")
        acl_name = params.get("auth-acl")
        if acl_name is not None and not tree.acl_lists.get(acl_name):
            problems.append(f"directory.xml: user {uid!r} auth-acl {acl_name!r} names no non-empty ACL list")


def _check_profile(tree: ParsedTree, problems: list[str]) -> None:
    profiles = tree.roots["sip_profile.xml"].findall("profile")
    if len(profiles) != 1:
        problems.append(f"sip_profile.xml: expected one <profile>, found {len(profiles)}")
        return
    settings = profiles[0].find("settings")
    params = _params(settings) if settings is not None else []
    names = [n for n, _ in params]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"sip_profile.xml: param {dup!r} is set twice")
    acl_name = dict(params).get("apply-inbound-acl")
    if acl_name is not None and acl_name not in tree.acl_lists:
        # A name FreeSWITCH does not know also denies, but silently: catch the typo here.
        problems.append(f"sip_profile.xml: apply-inbound-acl {acl_name!r} names no ACL list")
    proxy_acl = dict(params).get("apply-proxy-acl")
    if proxy_acl is not None and not tree.acl_lists.get(proxy_acl):
        problems.append(f"sip_profile.xml: apply-proxy-acl {proxy_acl!r} names no non-empty ACL list")


def _check_gateways(tree: ParsedTree, problems: list[str]) -> None:
    seen: set[str] = set()
    for gw in tree.roots["gateways.xml"].findall("gateway"):
        name = gw.get("name", "")
        if not _ACL_NAME.match(name) or name.lower() in seen:
            problems.append(f"gateways.xml: gateway name {name!r} is invalid or not unique")
        seen.add(name.lower())
        params = dict(_params(gw))
        if not params.get("proxy"):
            problems.append(f"gateways.xml: gateway {name!r} has no proxy")
        ref = _VAR_REF.match(params.get("password", ""))
        if ref is None:
            problems.append(f"gateways.xml: gateway {name!r} password must be a $${{...}} reference")
        elif ref.group(1) not in tree.secrets:
            problems.append(f"gateways.xml: gateway {name!r} password variable is not defined in secrets")


def _check_dialplan(tree: ParsedTree, problems: list[str]) -> None:
    contexts = tree.roots["dialplan.xml"].findall("context")
    if [c.get("name") for c in contexts] != ["kallglot"]:
        problems.append("dialplan.xml: expected exactly the context 'kallglot'")
        return
    names = [e.get("name", "") for e in contexts[0].findall("extension")]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"dialplan.xml: extension {dup!r} is defined twice")


def validate_files(files: Mapping[str, RenderedFile]) -> ParsedTree:
    """Parse and check a rendered tree; raises RenderValidationError listing every problem."""
    tree = parse_tree(files)
    problems: list[str] = []
    missing = [p for p in ("acl.xml", "directory.xml", "sip_profile.xml", "gateways.xml", "dialplan.xml")
               if p not in tree.roots]
    if missing:
        raise RenderValidationError([f"{p}: missing" for p in missing])
    _check_acl(tree, problems)
    _check_directory(tree, problems)
    _check_profile(tree, problems)
    _check_gateways(tree, problems)
    _check_dialplan(tree, problems)
    if problems:
        raise RenderValidationError(problems)
    return tree
