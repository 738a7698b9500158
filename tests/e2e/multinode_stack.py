"""Two FreeSWITCH nodes behind the rendered Kamailio front, on one machine (docs/multi-node.md).

One PostgreSQL database, one ``kallglot api`` (beside node A, as on a small install), one
``kallglot bridge`` (passthrough engine), and per node a real FreeSWITCH 1.10.12
(``LocalFreeSwitch``: its own conf dir, SIP/TLS/ESL ports and RTP range on 127.0.0.1) with its
own ``kallglot controller`` (its own ``KALLGLOT_NODE_ID``, ESL address and outbound-socket
port). Kamailio listens on 127.0.0.2 and dispatches to the nodes the controllers registered in
the store's ``nodes`` table (``kallglot kamailio render --nodes-json``).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.demo.procs import (
    Service,
    ServiceGroup,
    free_port,
    http_json,
    kallglot_argv,
    run_cli,
    wait_until,
)
from controller.demo.stack import _port_open  # the demo stack's own readiness check
from controller.kamailio.render import DEBIAN_MODULES, kamailio_binary
from controller.store import Store, open_store
from tests.e2e.real_switch import LocalFreeSwitch
from tests.e2e.sip_ua import CallResult, SipCall

FRONT_IP = "127.0.0.2"
SIP_DOMAIN = "sip.multinode.kallglot.test"


def ds_hash(call_id: str) -> int:
    """Kamailio dispatcher's Call-ID hash (``ds_get_hash(&cid, NULL)``, algorithm 0): lets a test
    pick Call-IDs that land on a given node. Checked against the real front in test_two_nodes."""
    data = call_id.strip().encode()
    h, i = 0, 0
    while i <= len(data) - 4:
        v = (data[i] << 24) + (data[i + 1] << 16) + (data[i + 2] << 8) + data[i + 3]
        v &= 0xFFFFFFFF
        h = (h + (v ^ (v >> 3))) & 0xFFFFFFFF
        i += 4
    v = 0
    for b in data[i:]:
        v = ((v << 8) + b) & 0xFFFFFFFF
    h = (h + (v ^ (v >> 3))) & 0xFFFFFFFF
    h = ((h + (h >> 11)) + ((h >> 13) + (h >> 23))) & 0xFFFFFFFF
    return h or 1


@dataclass
class Node:
    """One FreeSWITCH + controller. Has what ``LocalFreeSwitch`` reads of a DemoStack."""

    name: str
    workdir: Path
    env: dict[str, str]
    esl_port: int
    esl_password: str
    fs: LocalFreeSwitch | None = None
    controller: Service | None = None
    services: ServiceGroup | None = None

    @property
    def conf_dir(self) -> Path:
        return self.workdir / "freeswitch-conf"

    @property
    def sip_address(self) -> str:
        assert self.fs is not None
        return f"127.0.0.1:{self.fs.sip_port}"

    def json_logs(self, event: str) -> list[dict[str, Any]]:
        """The controller's JSON log lines of one event."""
        out = []
        log = self.workdir / "controller.log"
        for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
            start = line.find(f'{{"event":"{event}"')
            if start >= 0:
                out.append(json.loads(line[start:]))
        return out

    def wait_channels(self, count: int, timeout: float = 5.0) -> None:
        """Until this FreeSWITCH holds ``count`` channels (its list lags a new one by ~200 ms)."""
        fs = self.fs
        assert fs is not None
        wait_for(f"{count} channel(s) on {self.name}", lambda: fs.channel_count() == count, timeout)

    def kill_switch(self) -> None:
        """The node's FreeSWITCH dies (SIGKILL: no BYE to anyone, its SIP port goes silent)."""
        assert self.fs is not None
        self.fs.proc.send_signal(signal.SIGKILL)
        self.fs.proc.wait(timeout=10)


@dataclass
class Placed:
    """A call placed through the front: what the caller saw and where it landed."""

    call: SipCall
    result: CallResult
    session_id: str
    node_id: str | None = None

    @property
    def code(self) -> int | None:
        return self.result.code


@dataclass
class TwoNodeEdge:
    workdir: Path
    prefix: Path
    db_url: str
    heartbeat_s: float = 1.0
    dead_after_s: float = 5.0
    probe_interval_s: int = 1
    nodes: list[Node] = field(default_factory=list)
    services: ServiceGroup | None = None
    front_port: int = 0
    front_proc: subprocess.Popen[bytes] | None = None
    key: str = ""
    username: str = ""
    password: str = ""
    store: Store | None = None
    api_port: int = 0
    common: dict[str, str] = field(default_factory=dict)
    kamailio_dir: Path | None = None
    render_summary: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ life cycle
    def start(self) -> TwoNodeEdge:
        esl_password = secrets.token_urlsafe(12)
        bridge_port = free_port()
        self.common = {
            **os.environ, "KALLGLOT_DB": self.db_url, "KALLGLOT_SIP_DOMAIN": SIP_DOMAIN,
            "KALLGLOT_BRIDGE_HOST": "127.0.0.1", "KALLGLOT_BRIDGE_PORT": str(bridge_port),
            "KALLGLOT_BRIDGE_URL": f"ws://127.0.0.1:{bridge_port}", "KALLGLOT_ENGINE": "passthrough",
            "KALLGLOT_ESL_HOST": "127.0.0.1", "KALLGLOT_ESL_PASSWORD": esl_password,
            "KALLGLOT_ADMIN_TOKEN": secrets.token_urlsafe(16),
            # Read by the renderer (apply-proxy-acl) and by the controllers (caller's address).
            "KALLGLOT_SIP_TRUSTED_PROXIES": f"{FRONT_IP}/32",
            "KALLGLOT_NODE_HEARTBEAT_S": str(self.heartbeat_s),
            "KALLGLOT_NODE_DEAD_AFTER_S": str(self.dead_after_s),
            "KALLGLOT_LOG_LEVEL": "INFO",
        }
        self.store = open_store(self.db_url)
        org = run_cli(["org", "create", "Two Nodes Contact Centre"], self.common)
        self.key = str(run_cli(["key", "create", "--org", str(org["id"])], self.common)["key"])
        self.services = ServiceGroup(self.workdir, self.common)
        bridge = self.services.start("bridge")
        for i, name in enumerate(("fs-a", "fs-b")):
            self.nodes.append(self._start_node(name, i, esl_password))
        # The API beside node A: its own reloads render node A's tree; node B's gets `kallglot reload`.
        self.api_port = free_port()
        api = self.services.start("api", extra_env={**self.nodes[0].env, "KALLGLOT_API_HOST": "127.0.0.1",
                                                     "KALLGLOT_API_PORT": str(self.api_port)})
        alive = [bridge, api, *(n.controller for n in self.nodes if n.controller)]
        wait_until("the API", lambda: self.api("GET", "/healthz")[0] == 200, 30, alive=alive)
        wait_until("the bridge", self._bridge_up, 60, alive=alive)
        wait_until("both nodes registered", lambda: len(self.registered()) == 2, 30, alive=alive)
        self.api_ok("PATCH", "/v1/sip", {"enabled": True})
        creds = self.api_ok("POST", "/v1/sip/credentials")
        self.username, self.password = str(creds["username"]), str(creds["password"])
        self.apply()
        self._start_front()
        return self

    def _start_node(self, name: str, index: int, esl_password: str) -> Node:
        workdir = self.workdir / name
        workdir.mkdir()
        esl_port, controller_port = free_port(), free_port()
        rtp_start = 20000 + index * 200  # each switch its own RTP range
        env = {**self.common, "KALLGLOT_NODE_ID": name, "KALLGLOT_NODE_REGION": "eu",
               "KALLGLOT_FS_CONF_DIR": str(workdir / "freeswitch-conf"),
               "KALLGLOT_ESL_PORT": str(esl_port),
               "KALLGLOT_CONTROLLER_HOST": "127.0.0.1", "KALLGLOT_CONTROLLER_PORT": str(controller_port),
               "KALLGLOT_CONTROLLER_ADDRESS": f"127.0.0.1:{controller_port}",
               "KALLGLOT_CONTROLLER_METRICS_PORT": str(free_port()),
               "KALLGLOT_RTP_START_PORT": str(rtp_start), "KALLGLOT_RTP_END_PORT": str(rtp_start + 99)}
        node = Node(name, workdir, env, esl_port, esl_password)
        node.conf_dir.mkdir()
        run_cli(["render"], env)
        node.fs = LocalFreeSwitch(self.prefix, node)  # type: ignore[arg-type]  # duck-typed stack
        env["KALLGLOT_NODE_SIP_ADDRESS"] = node.sip_address  # what the front dispatches to
        node.services = ServiceGroup(workdir, env)
        node.controller = node.services.start("controller")
        wait_until(f"{name}'s controller", lambda: _port_open(controller_port), 30, alive=[node.controller])
        return node

    def close(self) -> None:
        if self.front_proc is not None:
            _stop_group(self.front_proc)
            self.front_proc = None
        for node in reversed(self.nodes):
            if node.services is not None:
                node.services.stop_all()
            if node.fs is not None:
                node.fs.stop()
        if self.services is not None:
            self.services.stop_all()
        if self.store is not None:
            self.store.close()

    # ------------------------------------------------------------------ API and store
    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        return http_json(method, f"http://127.0.0.1:{self.api_port}{path}", body,
                         token=self.common["KALLGLOT_ADMIN_TOKEN"] if path.startswith("/admin") else self.key)

    def api_ok(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        status, doc = self.api(method, path, body)
        assert 200 <= status < 300, (method, path, status, doc)
        return doc

    def _bridge_up(self) -> bool:
        try:
            return http_json("GET", f"http://127.0.0.1:{self.common['KALLGLOT_BRIDGE_PORT']}/healthz",
                             timeout=2)[0] == 200
        except Exception:  # not listening yet
            return False

    def registered(self) -> list[dict[str, Any]]:
        assert self.store is not None
        return [dict(r) for r in self.store.query(
            "SELECT id, sip_address, region, state FROM nodes WHERE sip_address IS NOT NULL ORDER BY id")]

    def apply(self) -> None:
        """The organization's settings onto both switches: ``kallglot reload`` with each node's env."""
        for node in self.nodes:
            if node.fs is not None and node.fs.running():
                run_cli(["reload"], node.env, timeout=90)

    def live_legs(self) -> int:
        assert self.store is not None
        row = self.store.query_one("SELECT COUNT(*) AS n FROM call_legs WHERE ended_at IS NULL")
        return int(row["n"])

    def leg_node(self, session_id: str) -> str | None:
        assert self.store is not None
        row = self.store.query_one("SELECT node_id FROM call_legs WHERE session_id = ? ORDER BY created_at",
                                   (session_id,))
        return None if row is None else row["node_id"]

    # ------------------------------------------------------------------ calls
    def place(self, call_id: str | None = None) -> Placed:
        """A digest-authenticated UDP call through the front to a new session (left up if answered)."""
        sid = str(self.api_ok("POST", "/v1/sessions", {"routing": {"type": "sip"}})["id"])
        call = SipCall((FRONT_IP, self.front_port), sid, SIP_DOMAIN, user=self.username,
                       password=self.password, timeout=15)
        if call_id is not None:
            call.call_id = call_id
        result = call.invite()
        placed = Placed(call, result, sid)
        if result.code == 200:
            placed.node_id = self.leg_node(sid)
        else:
            call.close()
        return placed

    def hang_up(self, placed: Placed) -> int | None:
        """BYE through the front (Route set from its Record-Route)."""
        return placed.call.bye() if placed.code == 200 else None

    # ------------------------------------------------------------------ the front
    def _start_front(self) -> None:
        exe = kamailio_binary()
        assert exe is not None
        kdir = self.workdir / "kamailio"
        kdir.mkdir()
        self.front_port = _free_udp_port(FRONT_IP)
        nodes = [{"name": r["id"], "sip_address": r["sip_address"], "region": r["region"] or "",
                  "state": r["state"]} for r in self.registered()]
        argv = kallglot_argv("kamailio", "render", "--out", str(kdir), "--nodes-json", "-",
                             "--listen", f"udp:{FRONT_IP}:{self.front_port}",
                             "--probe-interval", str(self.probe_interval_s), "--run-dir", str(kdir))
        out = subprocess.run(argv, input=json.dumps(nodes), env=self.common, capture_output=True, text=True,
                             timeout=60, check=False)
        assert out.returncode == 0, out.stderr
        self.render_summary = json.loads(out.stdout)
        cmd = [exe, "-f", str(kdir / "kamailio.cfg"), "-DD", "-E", "-n", "2", "-Y", str(kdir),
               "-P", str(kdir / "kamailio.pid"), "-w", str(kdir)]
        if DEBIAN_MODULES.is_dir():
            cmd[1:1] = ["-L", str(DEBIAN_MODULES)]
        with (kdir / "kamailio.log").open("wb") as log:
            self.front_proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True)
        self.kamailio_dir = kdir
        wait_until("the front's dispatcher to probe both nodes",
                   lambda: sorted(self.dispatcher_flags().values()) == ["AP", "AP"], 20)

    def dispatcher_flags(self) -> dict[str, str]:
        """``kamcmd dispatcher.list``: node SIP address → flags (AP active+probing, IP inactive)."""
        assert self.front_proc is not None and self.front_proc.poll() is None, self.front_log()
        out = subprocess.run(["kamcmd", "-s", f"unix:{self.kamailio_dir}/kamailio_ctl", "dispatcher.list"],
                             capture_output=True, text=True, timeout=10, check=False).stdout
        uris = re.findall(r"URI:\s*sip:([^\s;]+)", out)
        flags = re.findall(r"FLAGS:\s*(\w+)", out)
        return dict(zip(uris, flags, strict=False))

    def front_log(self) -> str:
        path = self.workdir / "kamailio" / "kamailio.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def _free_udp_port(ip: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Kamailio and its children (its own process group, started here)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextmanager
def two_node_edge(workdir: Path, prefix: Path, db_url: str, **options: Any) -> Iterator[TwoNodeEdge]:
    edge = TwoNodeEdge(workdir, prefix, db_url, **options)
    try:
        yield edge.start()
    finally:
        edge.close()


def wait_for(what: str, probe: Any, timeout: float, interval: float = 0.2) -> float:
    """Poll until ``probe()``; seconds it took."""
    started = time.monotonic()
    while not probe():
        assert time.monotonic() - started < timeout, f"timed out waiting for {what}"
        time.sleep(interval)
    return time.monotonic() - started
