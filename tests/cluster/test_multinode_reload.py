"""``/admin/reload`` with several FreeSWITCH nodes in the store: one render, every ``up`` node
reloaded at its own ESL address (ESL doubles: real sockets, real framing), each reported; a node
that fails does not stop the others; all failing rolls the tree back. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from controller.api.admin import RELOAD_ON_STARTUP_KEY, install
from controller.api.server import create_app
from controller.appkeys import SETTINGS_LISTENERS_KEY
from controller.cluster import NodeInfo, mark_stopped, register
from controller.fsconfig.service import FsConfigService, ReloadError, ReloadOutcome
from controller.fsconfig.tree import LiveTree, applied_generation
from controller.portal.apply import apply_change
from controller.settings import Settings
from controller.store import Store
from tests.fsconfig.esl_double import EslDouble
from tests.fsconfig.helpers import add_org, make_settings, update_sip
from tests.fsconfig.test_admin import TOKEN, Server

STATIC_CONF = Path(__file__).resolve().parents[2] / "freeswitch-conf"
RESCAN = "sofia profile kallglot rescan"


@pytest.fixture
def store(any_store: Store) -> Store:
    return any_store


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    conf = tmp_path / "conf"
    shutil.copytree(STATIC_CONF, conf, symlinks=True,
                    ignore=shutil.ignore_patterns("rendered", ".rendered-*", ".kallglot-*"))
    # The configured ESL address leads nowhere: with nodes registered it must not be used.
    return replace(make_settings(conf), esl_host="127.0.0.1", esl_port=_closed_port(), esl_password="s3cret")


@pytest.fixture
def two_fs() -> Iterator[tuple[EslDouble, EslDouble]]:
    with EslDouble("s3cret") as a, EslDouble("s3cret") as b:
        yield a, b


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _in_thread(fn: Any) -> Any:
    with ThreadPoolExecutor(1) as pool:  # the gevent ESL client gets its own hub, as in the API
        return pool.submit(fn).result(timeout=60)


def _reload(store: Store, settings: Settings) -> ReloadOutcome:
    return _in_thread(lambda: FsConfigService(store, settings, sleep=lambda s: None).reload())


def _bootstrap(store: Store, settings: Settings) -> str:
    """An org, a first render (FreeSWITCH started with it), then a change that needs a rescan."""
    org = add_org(store)
    FsConfigService(store, settings).render_live()
    update_sip(store, org, allowed_codecs=["PCMU"])
    return org


def _nodes(outcome: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["id"]: n for n in outcome["nodes"]}


def test_one_render_reaches_every_up_node_and_reports_each(store: Store, settings: Settings,
                                                           two_fs: tuple[EslDouble, EslDouble]) -> None:
    a, b = two_fs
    register(store, NodeInfo("fs-a", f"127.0.0.1:{a.port}", region="eu"))
    register(store, NodeInfo("fs-b", f"127.0.0.1:{b.port}", region="eu"))
    register(store, NodeInfo("fs-c", "127.0.0.1:9"))
    mark_stopped(store, "fs-c")
    _bootstrap(store, settings)
    tree = LiveTree(settings.fs_conf_dir)
    generations_before = sorted(p.name for p in tree.conf_dir.glob(".rendered-*"))

    body = _reload(store, settings).as_dict()

    assert a.changes == [RESCAN] and b.changes == [RESCAN]
    assert body["ok"] is True and [c["command"] for c in body["commands"]] == [RESCAN]
    nodes = _nodes(body)
    assert set(nodes) == {"fs-a", "fs-b"}
    assert nodes["fs-a"]["esl_address"] == f"127.0.0.1:{a.port}" and nodes["fs-a"]["ok"] is True
    assert [c["command"] for c in nodes["fs-b"]["commands"]] == [RESCAN]
    assert nodes["fs-b"]["restart_needed"] is False
    assert body["nodes_skipped"] == [{"id": "fs-c", "esl_address": "127.0.0.1:9", "state": "stopped"}]
    # Rendered once: one new generation, which both nodes now have.
    generations = sorted(p.name for p in tree.conf_dir.glob(".rendered-*"))
    assert len(set(generations) - set(generations_before)) == 1
    assert applied_generation(tree, "fs-a") == applied_generation(tree, "fs-b") == tree.current()
    assert applied_generation(tree) == tree.current()
    assert "s3cret" not in str(body)
    # Up to date everywhere: nothing is sent again.
    body = _reload(store, settings).as_dict()
    assert body["ok"] and body["commands"] == [] and a.changes == b.changes == [RESCAN]


def test_a_node_that_is_down_is_reported_and_caught_up_later(store: Store, settings: Settings,
                                                             two_fs: tuple[EslDouble, EslDouble]) -> None:
    a, b = two_fs
    down_port = _closed_port()
    register(store, NodeInfo("fs-a", f"127.0.0.1:{a.port}"))
    register(store, NodeInfo("fs-b", f"127.0.0.1:{down_port}"))
    _bootstrap(store, settings)
    tree = LiveTree(settings.fs_conf_dir)
    before = tree.current()

    body = _reload(store, settings).as_dict()

    nodes = _nodes(body)
    assert body["ok"] is False and nodes["fs-a"]["ok"] is True and nodes["fs-b"]["ok"] is False
    assert a.changes == [RESCAN] and [c["command"] for c in body["commands"]] == [RESCAN]
    assert f"127.0.0.1:{down_port}" in nodes["fs-b"]["error"] and nodes["fs-b"]["command"] == RESCAN
    assert nodes["fs-b"]["commands"] == [] and nodes["fs-b"]["rolled_back"] is False
    # The new tree stays (fs-a runs it); fs-b is still known to have the old one.
    assert tree.current() != before and applied_generation(tree, "fs-a") == tree.current()
    assert applied_generation(tree, "fs-b") is None and applied_generation(tree) == before
    assert before is not None and before.is_dir()  # kept: fs-b is diffed against it next time

    with EslDouble("s3cret") as b_back:  # fs-b's FreeSWITCH is back, at a new address
        register(store, NodeInfo("fs-b", f"127.0.0.1:{b_back.port}"))
        body = _reload(store, settings).as_dict()
        assert body["ok"] is True and b_back.changes == [RESCAN]
    assert a.changes == [RESCAN]  # fs-a already had it
    assert [c["command"] for c in _nodes(body)["fs-b"]["commands"]] == [RESCAN]
    assert _nodes(body)["fs-a"]["commands"] == []
    assert b.changes == []


def test_when_every_node_fails_the_previous_tree_is_kept(store: Store, settings: Settings,
                                                         two_fs: tuple[EslDouble, EslDouble]) -> None:
    a, _ = two_fs
    a.script["reloadacl"] = "-ERR acl busy\n"
    register(store, NodeInfo("fs-a", f"127.0.0.1:{a.port}"))
    register(store, NodeInfo("fs-b", f"127.0.0.1:{_closed_port()}"))
    org = _bootstrap(store, settings)
    update_sip(store, org, ip_allowlist=["192.0.2.0/24"])
    tree = LiveTree(settings.fs_conf_dir)
    before = tree.current()

    with pytest.raises(ReloadError) as info:
        _reload(store, settings)

    assert tree.current() == before  # previous good config kept
    err = info.value.as_dict()
    assert err["command"] == "reloadacl" and err["reply"] == "-ERR acl busy\n"
    assert err["rolled_back"] is True and [c["command"] for c in err["restore_commands"]] == ["reloadxml"]
    nodes = _nodes(err)
    assert nodes["fs-a"]["ok"] is False and nodes["fs-a"]["reply"] == "-ERR acl busy\n"
    assert nodes["fs-b"]["ok"] is False and nodes["fs-b"]["reply"] is None
    # fs-a re-read the restored files (its reloadxml replayed).
    assert a.changes == ["reloadxml", "reloadacl", "reloadxml"]


def test_admin_reload_over_http_answers_200_with_each_node(store: Store, settings: Settings,
                                                          two_fs: tuple[EslDouble, EslDouble]) -> None:
    a, _ = two_fs
    register(store, NodeInfo("fs-a", f"127.0.0.1:{a.port}"))
    register(store, NodeInfo("fs-b", f"127.0.0.1:{_closed_port()}"))
    _bootstrap(store, settings)
    app = create_app(replace(settings, admin_token=TOKEN, db_path=store.path), store)
    app[RELOAD_ON_STARTUP_KEY] = False
    install(app)
    server = Server(app)
    try:
        partial = server.post("/admin/reload")
        a.script["sofia profile kallglot restart"] = "-ERR nope\n"
        failed = server.post("/admin/reload", json={"restart_profile": True})
    finally:
        server.stop()
    assert partial.status_code == 200, partial.text
    body = partial.json()
    assert body["ok"] is False and [n["ok"] for n in body["nodes"]] == [True, False]
    # Every node failed (fs-a refuses, fs-b is down): 502 as with one FreeSWITCH, each node inside.
    assert failed.status_code == 502
    error = failed.json()["error"]
    assert error["code"] == "freeswitch_reload_failed"
    assert [n["id"] for n in error["freeswitch"]["nodes"]] == ["fs-a", "fs-b"]
    assert error["freeswitch"]["nodes"][1]["restart_needed"] is True
    assert "s3cret" not in failed.text + partial.text


def test_without_nodes_the_configured_freeswitch_is_reloaded_as_before(store: Store,
                                                                      settings: Settings) -> None:
    with EslDouble("s3cret") as fs:
        s = replace(settings, esl_port=fs.port)
        _bootstrap(store, s)
        body = _reload(store, s).as_dict()
    assert fs.changes == [RESCAN] and body["ok"] is True
    assert body["nodes"] == [{"id": None, "esl_address": f"127.0.0.1:{fs.port}", "ok": True,
                              "commands": body["commands"], "files_changed": body["files_changed"],
                              "restarted": False, "profile_ready_ms": None, "restart_needed": False}]


def test_the_portal_names_the_nodes_that_missed_the_change(store: Store, settings: Settings,
                                                           two_fs: tuple[EslDouble, EslDouble]) -> None:
    a, _ = two_fs
    register(store, NodeInfo("fs-a", f"127.0.0.1:{a.port}"))
    register(store, NodeInfo("fs-b", f"127.0.0.1:{_closed_port()}"))
    org = _bootstrap(store, settings)
    app = create_app(settings, store)
    install(app)
    app[SETTINGS_LISTENERS_KEY].clear()  # only the portal's own reload, not the debounced one
    text = asyncio.run(apply_change(app, org))
    assert text.startswith(f"FreeSWITCH reloaded ({RESCAN}).")
    assert "Not applied on node(s) fs-b" in text


def test_reload_nodes_local_tells_only_the_configured_freeswitch(store: Store, settings: Settings,
                                                                 two_fs: tuple[EslDouble, EslDouble]) -> None:
    # Each node renders a conf dir of its own (e.g. two nodes in one network namespace).
    a, b = two_fs
    register(store, NodeInfo("fs-b", f"127.0.0.1:{b.port}"))
    local = replace(settings, esl_port=a.port, reload_nodes="local")
    _bootstrap(store, local)
    body = _reload(store, local).as_dict()
    assert a.changes == [RESCAN] and b.changes == []
    assert [n["id"] for n in body["nodes"]] == [None] and body["nodes_skipped"] == []
