"""The structural checks catch each broken rule (trees rendered, then deliberately damaged)."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.fsconfig.model import Gateway, OrgSip
from controller.fsconfig.render import RenderedFile, render_files
from controller.fsconfig.source import build_config_input
from controller.fsconfig.validate import RenderValidationError, validate_files
from tests.fsconfig.helpers import make_settings

ORG = OrgSip("org_A", "alice", "0" * 32, ("10.0.0.0/8",), ("udp",), ("PCMU",))
GW = Gateway("pcon_G", "trunk.example.net", "u", "p", False)


def good() -> dict[str, RenderedFile]:
    cfg = build_config_input(make_settings(Path("/unused")), [ORG], [GW], ["192.0.2.0/24"], [])
    return render_files(cfg)


def damaged(path: str, old: str, new: str) -> dict[str, RenderedFile]:
    files = good()
    assert old in files[path].text
    files[path] = RenderedFile(files[path].text.replace(old, new), files[path].secret)
    return files


def test_the_rendered_tree_passes() -> None:
    tree = validate_files(good())
    assert set(tree.acl_lists) == {"kallglot_org_A", "kallglot_providers"}
    assert tree.secrets == {"kallglot_gw_pcon_G_password": "p"}


@pytest.mark.parametrize(("path", "old", "new", "problem"), [
    ("directory.xml", "</users>", "<broken></users>", "not well-formed XML"),
    ("directory.xml", '<param name="a1-hash" value="00000000000000000000000000000000"/>', "",
     "has no valid a1-hash"),
    ("directory.xml", '<param name="a1-hash"', '<param name="password" value="x"/><param name="a1-hash"',
     "carries a password"),
    ("directory.xml", 'value="kallglot_org_A"', 'value="kallglot_nope"', "names no non-empty ACL list"),
    ("directory.xml", "</users>", '<user id="ALICE"><params><param name="a1-hash" value="'
     + "1" * 32 + '"/></params></user></users>', "not unique"),
    ("acl.xml", '<node type="allow" cidr="10.0.0.0/8"/>', "", "is empty"),
    ("acl.xml", 'cidr="10.0.0.0/8"', 'cidr="10.0.0.0/33"', "invalid cidr"),
    ("acl.xml", '<list name="kallglot_org_A" default="deny">', '<list name="kallglot_org_A" default="allow">',
     "must default to deny"),
    ("sip_profile.xml", 'value="kallglot_providers"', 'value="kallglot_missing"', "apply-inbound-acl"),
    ("sip_profile.xml", '<param name="auth-calls" value="true"/>',
     '<param name="auth-calls" value="true"/><param name="auth-calls" value="false"/>', "set twice"),
    ("gateways.xml", '<param name="proxy" value="trunk.example.net"/>', "", "has no proxy"),
    ("gateways.xml", "$${kallglot_gw_pcon_G_password}", "plain-text", "must be a $${...} reference"),
    ("secrets/gateway_passwords.xml", "kallglot_gw_pcon_G_password=", "other_var=",
     "password variable is not defined"),
    ("dialplan.xml", '<extension name="kallglot_not_found">', '<extension name="kallglot_session">',
     "defined twice"),
])
def test_each_rule_is_enforced(path: str, old: str, new: str, problem: str) -> None:
    with pytest.raises(RenderValidationError) as err:
        validate_files(damaged(path, old, new))
    # Each problem names the file it is found in (the gateway, for a secret it cannot resolve).
    where = "gateways.xml" if path.startswith("secrets/") else path
    assert any(p.startswith(f"{where}:") and problem in p for p in err.value.problems), err.value.problems


def test_missing_file_is_reported() -> None:
    files = good()
    del files["dialplan.xml"]
    with pytest.raises(RenderValidationError, match=r"dialplan\.xml: missing"):
        validate_files(files)
