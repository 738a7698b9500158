"""docker-compose.yml, the Dockerfiles and the static FreeSWITCH tree, checked structurally."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.fsconfig.conftest import STATIC_CONF

ROOT = Path(__file__).resolve().parents[2]


def test_compose_services_ports_env_and_healthchecks() -> None:
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"freeswitch", "controller", "api", "bridge"}
    assert all(re.fullmatch(r"[a-z0-9-]+", name) for name in services)  # websocket host rule
    fs = services["freeswitch"]
    assert {"5060:5060/udp", "5060:5060/tcp", "5061:5061/tcp"} <= set(fs["ports"])
    assert any(p.endswith("/udp") and "RTP_START_PORT" in p for p in fs["ports"])
    for name in ("freeswitch", "api", "bridge"):
        assert services[name]["healthcheck"]["test"], name
    assert "fs_cli" in " ".join(fs["healthcheck"]["test"])
    for name in ("controller", "api", "bridge"):
        env = services[name]["environment"]
        assert env["KALLGLOT_BRIDGE_URL"] == "ws://bridge:8765"
        assert env["KALLGLOT_CONTROLLER_ADDRESS"] == "controller:8084"
        assert env["KALLGLOT_ESL_HOST"] == "freeswitch"
    mounts = {v.split(":")[1] for v in fs["volumes"]}
    assert "/etc/kallglot/freeswitch" in mounts
    api_mounts = {v.split(":")[1]: v for v in services["api"]["volumes"]}
    assert not api_mounts["/etc/kallglot/freeswitch"].endswith(":ro")  # the api renders into it


def test_the_freeswitch_image_builds_from_pinned_sources_with_the_shared_recipe() -> None:
    fs = (ROOT / "docker" / "freeswitch.Dockerfile").read_text()
    assert "build-freeswitch.sh --deps" in fs and "AS build" in fs and "COPY --from=build" in fs
    # No token, no prebuilt binary, no build argument the compose file would have to supply.
    for gone in ("signalwire", "--mount=type=secret", ".deb", "curl ", "ARG MOD_"):
        assert gone not in fs, gone
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "signalwire" not in compose.lower() and "MOD_AUDIO_STREAM_DEB_URL" not in compose
    py = (ROOT / "docker" / "kallglot.Dockerfile").read_text()
    assert 'pip install --no-cache-dir ".[engine]"' in py
    assert all(pkg in py for pkg in ("espeak-ng", "apertium", "apertium-eng-spa"))


def test_the_build_recipe_pins_every_source_and_builds_the_modules_the_config_loads() -> None:
    recipe = (ROOT / "docker" / "build-freeswitch.sh").read_text()
    pins = dict(re.findall(r"^([A-Z_]+_COMMIT)=([0-9a-f]+)", recipe, re.M))
    assert pins == {
        "FREESWITCH_COMMIT": "a88d069d6ffb74df797bcaf001f7e63181c07a09",  # v1.10.12
        "SOFIA_SIP_COMMIT": "6198851a610b7889c17e2d98fb84617bc1dd7aec",  # v1.13.17
        "SPANDSP_COMMIT": "0d2e6ac65e0e8f53d652665a743015a88bf048d4",
        "MOD_AUDIO_STREAM_COMMIT": "ec2a781026a1c09b0c3a6161b8b896f0b9305922",  # MIT edition
        "LIBWSC_COMMIT": "09d18e5db9243a996692261a7a0839c9c346bc47",
        "SIPP_COMMIT": "369b3c187f0ff96f3ec9795650820e80cf17c776",  # v3.7.7
    }
    block = re.search(r"FREESWITCH_MODULES=\((.*?)\)", recipe, re.S)
    assert block is not None
    built = {line.strip().rsplit("/", 1)[1] for line in block.group(1).splitlines() if line.strip()}
    root = ET.parse(STATIC_CONF / "autoload_configs" / "modules.conf.xml").getroot()  # noqa: S314
    loaded = {m.get("module") for m in root.iter("load")}
    # mod_audio_stream is built by its own CMake project, not by FreeSWITCH's modules.conf.
    assert built == loaded - {"mod_audio_stream"}
    assert "-DUSE_TLS=ON" in recipe


def test_python_image_copies_every_file_the_build_metadata_names() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = {project["readme"], *project.get("license-files", [])}
    dockerfile = (ROOT / "docker" / "kallglot.Dockerfile").read_text()
    before_install = dockerfile.split('pip install', 1)[0]
    copied = {name for line in before_install.splitlines() if line.startswith("COPY ")
              for name in line.split()[1:-1]}
    assert needed <= copied, needed - copied
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert not needed & set(ignored)


def test_freeswitch_image_dirs_are_writable_by_any_uid() -> None:
    # -log holds the pre-processed freeswitch.xml.fsxml (no config loads without it), -db the
    # core/sofia databases, -temp mod_audio_stream's ::play files; tests/e2e runs the image as
    # the invoking user, compose as uid 10001.
    dockerfile = (ROOT / "docker" / "freeswitch.Dockerfile").read_text()
    entry = re.search(r"ENTRYPOINT \[(.*?)\]", dockerfile, re.S)
    assert entry is not None
    args = re.findall(r'"([^"]+)"', entry.group(1))
    dirs = {args[i + 1] for i, a in enumerate(args) if a in ("-log", "-db", "-run", "-temp")}
    assert len(dirs) == 4
    chmod = re.search(r"chmod 1777 ([^;\n]+)", dockerfile)
    assert chmod is not None and dirs <= set(chmod.group(1).split())


def test_static_tree_loads_the_needed_modules() -> None:
    root = ET.parse(STATIC_CONF / "autoload_configs" / "modules.conf.xml").getroot()  # noqa: S314
    modules = {m.get("module") for m in root.iter("load")}
    assert modules == {
        "mod_console", "mod_logfile", "mod_event_socket", "mod_commands", "mod_sofia", "mod_dialplan_xml",
        "mod_dptools", "mod_opus", "mod_spandsp", "mod_sndfile", "mod_native_file", "mod_audio_stream",
        "mod_tone_stream",
    }


def test_the_break_sink_the_controller_plays_has_its_module_loaded() -> None:
    # Seen on 1.10.12 without it: "Invalid file format [silence_stream] for [20]!" after a barge-in.
    from controller.calls.playback import CF_BREAK_SINK

    root = ET.parse(STATIC_CONF / "autoload_configs" / "modules.conf.xml").getroot()  # noqa: S314
    modules = {m.get("module") for m in root.iter("load")}
    assert CF_BREAK_SINK.startswith("silence_stream://") and "mod_tone_stream" in modules


def test_opus_has_a_config_section_so_its_defaults_apply() -> None:
    # mod_opus.c opus_load_config(): the FEC/jitter-buffer defaults are only set after
    # switch_xml_open_cfg("opus.conf") succeeds; a missing section leaves them all zero.
    configs = {
        ET.parse(path).getroot().get("name"): ET.parse(path).getroot()  # noqa: S314
        for path in (STATIC_CONF / "autoload_configs").glob("*.xml")
    }
    assert configs["opus.conf"].find("settings") is not None


def test_static_tree_comments_never_mention_the_preprocessor_keyword() -> None:
    # FreeSWITCH drops any line naming the pre-processor tag without '<' in front of it.
    for path in STATIC_CONF.rglob("*.xml"):
        if "rendered" in path.parts or path.name.startswith("."):
            continue
        for line in path.read_text().splitlines():
            idx = line.lower().find("x-pre-process")
            assert idx < 0 or line[idx - 1] == "<", (path, line)
