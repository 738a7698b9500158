"""The rendered Kamailio front: accepted by `kamailio -c`, and hostile node values refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.kamailio.cli import main as kamailio_main
from controller.kamailio.model import KamailioConfigError, KamailioNode, KamailioSettings, build_input
from controller.kamailio.render import check_config, render_files, write_files

NODES = [KamailioNode("fs1", "10.0.0.11:5060", "eu"), KamailioNode("fs2", "10.0.0.12:5080", "us")]


def _settings(tmp_path: Path, tls_pair: tuple[Path, Path] | None = None, **kw: object) -> KamailioSettings:
    values: dict[str, object] = {
        "sip_domain": "sip.example.com",
        "config_dir": str(tmp_path),
        "run_dir": str(tmp_path),
    }
    if tls_pair:
        values.update(tls_certificate=str(tls_pair[0]), tls_private_key=str(tls_pair[1]))
    return KamailioSettings(**(values | kw))  # type: ignore[arg-type]


def test_two_nodes_pass_kamailio_check(kamailio: str, tls_pair: tuple[Path, Path], tmp_path: Path) -> None:
    k = build_input(_settings(tmp_path, tls_pair), NODES)
    files = render_files(k)
    assert set(files) == {"kamailio.cfg", "dispatcher.list", "tls.cfg"}
    write_files(files, tmp_path)
    result = check_config(tmp_path / "kamailio.cfg", kamailio)
    assert result.ok, result.output
    assert "config file ok" in result.output

    lines = [ln for ln in files["dispatcher.list"].splitlines() if ln and not ln.startswith("#")]
    assert lines == [
        "1 sip:10.0.0.11:5060 0 0 duid=fs1;region=eu;state=up",
        "1 sip:10.0.0.12:5080 0 0 duid=fs2;region=us;state=up",
    ]
    cfg = files["kamailio.cfg"]
    assert "listen=tls:0.0.0.0:5061" in cfg and "enable_tls=yes" in cfg
    assert f'modparam("dispatcher", "list_file", "{tmp_path}/dispatcher.list")' in cfg
    assert 'modparam("dispatcher", "ds_ping_method", "OPTIONS")' in cfg
    assert "record_route();" in cfg
    # The source headers are removed before they are stamped.
    assert cfg.index('remove_hf("X-Kallglot-Source-IP")') < cfg.index('append_hf("X-Kallglot-Source-IP: $si')
    assert f"certificate = {tls_pair[0]}" in files["tls.cfg"]


def test_without_tls_no_tls_module(kamailio: str, tmp_path: Path) -> None:
    k = build_input(_settings(tmp_path, listen=("udp:127.0.0.1:5060",), node_transport="tcp"), NODES[:1])
    files = render_files(k)
    assert "tls.cfg" not in files and 'loadmodule "tls.so"' not in files["kamailio.cfg"]
    assert "sip:10.0.0.11:5060;transport=tcp" in files["dispatcher.list"]
    write_files(files, tmp_path)
    assert check_config(tmp_path / "kamailio.cfg", kamailio).ok


def test_states_other_than_up_are_admin_disabled(tmp_path: Path) -> None:
    nodes = [KamailioNode("fs1", "10.0.0.11"), KamailioNode("fs2", "[2001:db8::2]:5060", "", "draining")]
    text = render_files(build_input(_settings(tmp_path, listen=("udp:0.0.0.0",)), nodes))["dispatcher.list"]
    assert "1 sip:10.0.0.11:5060 0 0 duid=fs1;state=up" in text
    assert "1 sip:[2001:db8::2]:5060 4 0 duid=fs2;state=draining" in text


@pytest.mark.parametrize(
    ("node", "field"),
    [
        (KamailioNode("fs1\n1 sip:evil", "10.0.0.1:5060"), "nodes[0].name"),
        (KamailioNode('fs"1', "10.0.0.1:5060"), "nodes[0].name"),
        (KamailioNode("fs1", "10.0.0.1:5060;transport=tls"), "nodes[0].sip_address"),
        (KamailioNode("fs1", "10.0.0.1:5060 0 0 duid=x"), "nodes[0].sip_address"),
        (KamailioNode("fs1", "fs1.internal:5060"), "nodes[0].sip_address"),
        (KamailioNode("fs1", "10.0.0.1:70000"), "nodes[0].sip_address"),
        (KamailioNode("fs1", "10.0.0.1:5060", "eu;duid=x"), "nodes[0].region"),
        (KamailioNode("fs1", "10.0.0.1:5060", "eu", "maybe"), "nodes[0].state"),
    ],
)
def test_hostile_node_values_are_refused(node: KamailioNode, field: str, tmp_path: Path) -> None:
    with pytest.raises(KamailioConfigError) as err:
        build_input(_settings(tmp_path), [node])
    assert err.value.field == field


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"sip_domain": 'sip.example.com"; exit'}, "sip_domain"),
        ({"listen": ("udp:0.0.0.0:5060", "sctp:0.0.0.0:5060")}, "listen[1]"),
        ({"tls_certificate": '/etc/x.pem"\nloadmodule "evil.so'}, "tls_certificate"),
        ({"config_dir": "relative/dir"}, "config_dir"),
        ({"advertise": "203.0.113.5 advertise"}, "advertise"),
        ({"probe_interval_s": 0}, "probe_interval_s"),
    ],
)
def test_hostile_settings_are_refused(changes: dict[str, object], field: str, tmp_path: Path) -> None:
    with pytest.raises(KamailioConfigError) as err:
        build_input(_settings(tmp_path, **changes), NODES)
    assert err.value.field == field


def test_duplicates_and_empty_are_refused(tmp_path: Path) -> None:
    with pytest.raises(KamailioConfigError, match="at least one"):
        build_input(_settings(tmp_path), [])
    with pytest.raises(KamailioConfigError) as err:
        build_input(_settings(tmp_path), [NODES[0], KamailioNode("fs9", "10.0.0.11:5060")])
    assert err.value.field == "nodes[1].sip_address"


def test_cli_renders_and_checks(kamailio: str, tls_pair: tuple[Path, Path], tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "front"
    rc = kamailio_main([
        "render", "--sip-domain", "sip.example.com", "--out", str(out), "--run-dir", str(tmp_path),
        "--node", "name=fs1,sip=10.0.0.11:5060,region=eu",
        "--node", "name=fs2,sip=10.0.0.12:5060,region=eu,state=draining",
        "--tls-cert", str(tls_pair[0]), "--tls-key", str(tls_pair[1]), "--check",
    ])
    summary = json.loads(capsys.readouterr().out)
    assert rc == 0, summary
    assert summary["in_service"] == ["fs1"] and summary["check"]["ok"] and summary["tls"]
    assert (out / "dispatcher.list").is_file() and (out / "tls.cfg").is_file()


def test_cli_error_names_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = kamailio_main(["render", "--out", str(tmp_path), "--node", "name=fs1,sip=10.0.0.11:5060,colour=red"])
    assert rc == 1
    err = json.loads(capsys.readouterr().err)["error"]
    assert err["code"] == "invalid_configuration" and err["field"] == "nodes[0]"


def test_kallglot_has_the_subcommand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from controller.cli import main

    rc = main(["kamailio", "render", "--sip-domain", "sip.example.com", "--out", str(tmp_path),
               "--listen", "udp:127.0.0.1:5060", "--node", "name=fs1,sip=10.0.0.11"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["in_service"] == ["fs1"]
    assert "1 sip:10.0.0.11:5060 0 0 duid=fs1;state=up" in (tmp_path / "dispatcher.list").read_text()
