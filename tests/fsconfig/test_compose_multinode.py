"""docker/compose.multinode.yml (two nodes + Kamailio + PostgreSQL), checked without a Docker
engine: it parses, every file and command it names exists, every KALLGLOT_* variable is one the
process it is given to reads, and the nodes, the front and the trusted-proxy setting agree."""

from __future__ import annotations

import ipaddress
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from controller.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker" / "compose.multinode.yml"
NODES = {"fs1": "controller1", "fs2": "controller2"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict)
    return doc


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


def _ip(compose: dict[str, Any], name: str) -> str:
    return str(compose["services"][name]["networks"]["edge"]["ipv4_address"])


def _settings_names() -> set[str]:
    return {"KALLGLOT_DB" if f.name == "db_path" else "KALLGLOT_" + f.name.upper() for f in fields(Settings)}


def _names_in(*paths: Path) -> set[str]:
    return {m for p in paths for m in re.findall(r"KALLGLOT_[A-Z0-9_]+", p.read_text())}


def test_services_and_the_images_they_build(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "api", "bridge", "kamailio", *NODES, *NODES.values()}
    assert all(re.fullmatch(r"[a-z0-9-]+", name) for name in services)  # websocket host rule
    for name, service in services.items():
        build = service.get("build")
        if build is None:
            assert name == "postgres" and str(service["image"]).startswith("postgres:")
            continue
        context = (COMPOSE.parent / build["context"]).resolve()
        assert context == ROOT, name
        assert (context / build["dockerfile"]).is_file(), name
    # The two images of docker-compose.yml, reused under the same tags.
    assert services["api"]["image"] == services["controller1"]["image"] == "kallglot/sip-edge:local"
    assert services["fs1"]["image"] == services["fs2"]["image"] == "kallglot/freeswitch:local"


def test_bind_mounts_exist_and_only_the_api_writes_the_tree(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes") or []:
            source, target, *mode = str(volume).split(":")
            if source.startswith("."):
                assert (COMPOSE.parent / source).resolve().is_dir(), (name, volume)
            else:
                assert source in compose["volumes"], (name, volume)
            if target == "/etc/kallglot/freeswitch":
                assert (mode == ["ro"]) == (name != "api"), (name, volume)


def test_commands_exist(compose: dict[str, Any]) -> None:
    from controller.cli import build_parser

    parser = build_parser()
    choices = next(a.choices for a in parser._actions if a.dest == "command")
    services = compose["services"]
    for name in ("bridge", "controller1", "controller2"):
        assert services[name]["command"][0] in choices, name
    entry = " ".join(services["api"]["entrypoint"])
    for sub in re.findall(r"kallglot (\w+)", entry):
        assert sub in choices
    kamailio_df = (ROOT / "docker" / "kamailio.Dockerfile").read_text()
    script = ROOT / "docker" / "kamailio-start.sh"
    assert "COPY docker/kamailio-start.sh" in kamailio_df and script.is_file()
    assert "kamailio-tls-modules" in kamailio_df and "bookworm" in kamailio_df
    assert subprocess.run(["sh", "-n", str(script)], check=False).returncode == 0
    assert "kallglot kamailio render" in script.read_text()


def test_every_variable_is_read_by_its_process(compose: dict[str, Any]) -> None:
    settings = _settings_names()
    bridge_reads = settings | _names_in(*(ROOT / "media_bridge").rglob("*.py"))
    switch_reads = {m for m in re.findall(r"\$(KALLGLOT_[A-Z0-9_]+)", (ROOT / "freeswitch-conf" / "vars.xml")
                                          .read_text())}
    kamailio_reads = settings | _names_in(ROOT / "docker" / "kamailio-start.sh")
    readers = {"api": settings, "controller1": settings, "controller2": settings, "bridge": bridge_reads,
               "fs1": switch_reads, "fs2": switch_reads, "kamailio": kamailio_reads}
    for name, reads in readers.items():
        env = _env(compose["services"][name])
        unknown = {k for k in env if k.startswith("KALLGLOT_")} - reads
        assert not unknown, (name, unknown)
    for name in ("api", "bridge", *NODES.values()):  # and their values pass the settings' checks
        Settings.from_env({k: v for k, v in _env(compose["services"][name]).items() if "${" not in v})


def test_each_controller_is_its_switchs_node(compose: dict[str, Any]) -> None:
    services = compose["services"]
    subnet = ipaddress.ip_network(compose["networks"]["edge"]["ipam"]["config"][0]["subnet"])
    ranges = []
    for fs, ctl in NODES.items():
        ip = _ip(compose, fs)
        assert ipaddress.ip_address(ip) in subnet
        env, fs_env = _env(services[ctl]), _env(services[fs])
        # Same network namespace: the shared tree's 127.0.0.1:8084 is this node's controller.
        assert services[ctl]["network_mode"] == f"service:{fs}"
        assert env["KALLGLOT_CONTROLLER_ADDRESS"] == f"127.0.0.1:{env['KALLGLOT_CONTROLLER_PORT']}"
        assert (env["KALLGLOT_NODE_ID"], env["KALLGLOT_ESL_HOST"], env["KALLGLOT_NODE_SIP_ADDRESS"]) == (
            fs, ip, f"{ip}:5060")
        assert fs_env["KALLGLOT_FS_SIP_IP"] == ip and fs_env["KALLGLOT_FS_ESL_LISTEN_IP"] == "0.0.0.0"
        assert services[ctl]["depends_on"][fs]["condition"] == "service_healthy"
        ranges.append(range(int(fs_env["KALLGLOT_RTP_START_PORT"]), int(fs_env["KALLGLOT_RTP_END_PORT"]) + 1))
    assert not set(ranges[0]) & set(ranges[1])
    assert "postgresql://" in _env(services["api"])["KALLGLOT_DB"]
    assert len({_env(services[c])["KALLGLOT_DB"] for c in ("api", "bridge", *NODES.values())}) == 1


def test_the_front_dispatches_to_the_nodes_and_is_the_trusted_proxy(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = _env(services["kamailio"])
    front = _ip(compose, "kamailio")
    nodes = [dict(p.split("=", 1) for p in spec.split(","))
             for spec in env["KALLGLOT_KAMAILIO_NODES"].split()]
    assert [(n["name"], n["sip"]) for n in nodes] == [
        (fs, _env(services[ctl])["KALLGLOT_NODE_SIP_ADDRESS"]) for fs, ctl in NODES.items()]
    assert all(s.split(":")[1] == front for s in env["KALLGLOT_KAMAILIO_LISTEN"].split())
    for name in ("api", *NODES.values()):  # the renderer and the controllers
        assert _env(services[name])["KALLGLOT_SIP_TRUSTED_PROXIES"] == f"{front}/32", name
    assert "5060:5060/udp" in services["kamailio"]["ports"]
    for fs in NODES:  # SIP reaches the nodes through the front only
        assert not any(":5060" in str(p) for p in services[fs].get("ports", [])), fs


def test_the_fronts_render_passes_kamailio_check(compose: dict[str, Any], tmp_path: Path) -> None:
    """What docker/kamailio-start.sh runs, with the compose file's nodes and sockets."""
    from controller.kamailio.render import kamailio_binary

    if kamailio_binary() is None or shutil.which("openssl") is None:
        pytest.skip("kamailio (Debian kamailio + kamailio-tls-modules) or openssl missing")
    env = _env(compose["services"]["kamailio"])
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=t", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    argv = [sys.executable, "-m", "controller.kamailio", "render", "--out", str(tmp_path / "out"),
            "--tls-cert", str(cert), "--tls-key", str(key), "--check",
            "--probe-interval", env["KALLGLOT_KAMAILIO_PROBE_INTERVAL_S"]]
    argv += [a for n in env["KALLGLOT_KAMAILIO_NODES"].split() for a in ("--node", n)]
    argv += [a for s in env["KALLGLOT_KAMAILIO_LISTEN"].split() for a in ("--listen", s)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, (shlex.join(argv), done.stdout[-1500:], done.stderr[-1500:])
    assert '"ok": true' in done.stdout
