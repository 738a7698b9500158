"""Invariants of the reload planner over random pairs of configurations."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.fsconfig.model import CODECS, TRANSPORTS, Gateway, ManagedNumber, OrgSip
from controller.fsconfig.plan import plan_reload, snapshot
from controller.fsconfig.render import RenderedFile, render_files
from controller.fsconfig.source import build_config_input
from tests.fsconfig.helpers import make_settings

SETTINGS = make_settings(Path("/unused"))

orgs = st.lists(
    st.builds(
        OrgSip,
        org_id=st.sampled_from(["org_A", "org_B", "org_C"]),
        username=st.sampled_from(["alice", "bob", "carol"]),
        a1_hash=st.sampled_from(["0" * 32, "1" * 32]),
        ip_allowlist=st.sampled_from([(), ("10.0.0.0/8",), ("10.0.0.0/8", "192.0.2.1/32")]),
        allowed_transports=st.lists(st.sampled_from(TRANSPORTS), min_size=1, unique=True).map(tuple),
        allowed_codecs=st.lists(st.sampled_from(CODECS), min_size=1, unique=True).map(tuple),
    ),
    max_size=3, unique_by=(lambda o: o.org_id, lambda o: o.username),
)
gateways = st.lists(
    st.builds(
        Gateway,
        connection_id=st.sampled_from(["pcon_A", "pcon_B", "pcon_C"]),
        proxy=st.sampled_from(["a.example", "b.example:5080"]),
        username=st.sampled_from(["u1", "u2"]),
        password=st.sampled_from(["p1", "p2"]),
        register=st.booleans(),
    ),
    max_size=3, unique_by=lambda g: g.connection_id,
)
configs = st.builds(
    lambda o, g, c, n: render_files(build_config_input(SETTINGS, o, g, c, n)),
    orgs, gateways,
    st.sampled_from([[], ["192.0.2.0/24"], ["192.0.2.0/24", "198.51.100.0/24"]]),
    st.sampled_from([[], [ManagedNumber("pn_A", "+4930123456")]]),
)


@settings(max_examples=150, deadline=None)
@given(old=configs, new=configs)
def test_plan_invariants(old: dict[str, RenderedFile], new: dict[str, RenderedFile]) -> None:
    a, b = snapshot(old), snapshot(new)
    plan = plan_reload(a, b)
    cmds = list(plan.commands)
    assert plan_reload(b, b).commands == ()
    assert bool(plan.files_changed) == (a.files != b.files)
    if a.directory != b.directory or a.dialplan != b.dialplan or a.acl != b.acl:
        assert cmds[0] == "reloadxml"
    if "reloadacl" in cmds:
        assert cmds.index("reloadxml") < cmds.index("reloadacl")
    assert ("reloadacl" in cmds) == (a.acl != b.acl)
    # Every pair differs only in tenants' settings (same install settings): never a restart,
    # stop or start, which would end every organization's calls on the shared profile.
    assert not plan.restart
    assert not any(c.endswith((" restart", " stop", " start")) for c in cmds)
    for name in set(a.gateways) - set(b.gateways):
        assert f"sofia profile kallglot killgw {name}" in cmds
    if set(b.gateways) - set(a.gateways):
        assert cmds[-1] == "sofia profile kallglot rescan"
    assert len(cmds) == len(set(cmds))
