"""The whole edge on one machine, for ``kallglot demo`` and the end-to-end tests.

The real ``kallglot api``, ``kallglot controller`` and ``kallglot bridge`` run as subprocesses on
127.0.0.1 (free ports, a temporary store and FreeSWITCH conf dir); FreeSWITCH itself is the test
double of ``tests/fsdouble`` (in this process, on its own thread), which decides every call from
the files ``kallglot render``/``kallglot reload`` wrote and speaks real ESL to the controller and
real websockets to the bridge. Organizations and keys are made with the real CLI; everything
else goes through the HTTP API.
"""

from __future__ import annotations

import importlib
import os
import secrets
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import controller
from controller.demo.procs import (
    DemoError,
    Service,
    ServiceGroup,
    free_port,
    http_json,
    run_cli,
    wait_until,
)
from controller.demo.progress import Progress

DEMO_SIP_DOMAIN = "sip.demo.kallglot.test"


def load_double() -> ModuleType:
    """``tests.fsdouble`` from the source checkout this package was installed from (editable)."""
    root = Path(controller.__file__).resolve().parents[1]
    if not (root / "tests" / "fsdouble" / "switch.py").is_file():
        raise DemoError(
            "kallglot demo runs the FreeSWITCH test double from tests/fsdouble, which is not next to "
            f"this installation ({root}). Run it from a source checkout installed with `pip install -e .`.")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        return importlib.import_module("tests.fsdouble")
    except ImportError as exc:
        raise DemoError(f"cannot import the FreeSWITCH test double (tests/fsdouble): {exc}") from exc


def _start_double(stack: DemoStack) -> Any:
    """The FreeSWITCH double on the rendered tree (sofia profile up long enough to restart)."""
    fsdouble = load_double()
    temp_dir = stack.workdir / "freeswitch-tmp"
    temp_dir.mkdir(exist_ok=True)
    fs = fsdouble.FreeSwitchDouble(stack.conf_dir / "rendered", esl_password=stack.esl_password,
                                   esl_port=stack.esl_port, temp_dir=temp_dir, profile_uptime=60.0)
    return fs.start()


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class DemoStack:
    """Start with :meth:`start`, always :meth:`close` (also after a failure or Ctrl-C)."""

    def __init__(self, workdir: Path, *, engine: str | None = None, progress: Progress | None = None,
                 sip_domain: str = DEMO_SIP_DOMAIN,
                 switch_factory: Callable[[DemoStack], Any] | None = None) -> None:
        """``switch_factory(stack)`` starts another FreeSWITCH (an object with ``stop()``) on
        ``stack.conf_dir`` / ``stack.esl_port`` / ``stack.esl_password`` instead of the double."""
        self.workdir = workdir
        self.switch_factory = switch_factory
        self.progress = progress or Progress()
        self.sip_domain = sip_domain
        self.api_port, self.bridge_port = free_port(), free_port()
        self.controller_port, self.esl_port = free_port(), free_port()
        self.controller_metrics_port = free_port()
        self.esl_password = secrets.token_urlsafe(12)
        self.conf_dir = workdir / "freeswitch-conf"
        self.env: dict[str, str] = {
            **os.environ,
            "KALLGLOT_DB": str(workdir / "kallglot.db"),
            "KALLGLOT_SIP_DOMAIN": sip_domain,
            "KALLGLOT_API_HOST": "127.0.0.1", "KALLGLOT_API_PORT": str(self.api_port),
            "KALLGLOT_BRIDGE_HOST": "127.0.0.1", "KALLGLOT_BRIDGE_PORT": str(self.bridge_port),
            "KALLGLOT_BRIDGE_URL": f"ws://127.0.0.1:{self.bridge_port}",
            "KALLGLOT_CONTROLLER_HOST": "127.0.0.1", "KALLGLOT_CONTROLLER_PORT": str(self.controller_port),
            "KALLGLOT_CONTROLLER_ADDRESS": f"127.0.0.1:{self.controller_port}",
            "KALLGLOT_CONTROLLER_METRICS_PORT": str(self.controller_metrics_port),
            "KALLGLOT_ESL_HOST": "127.0.0.1", "KALLGLOT_ESL_PORT": str(self.esl_port),
            "KALLGLOT_ESL_PASSWORD": self.esl_password,
            "KALLGLOT_ADMIN_TOKEN": secrets.token_urlsafe(16),
            "KALLGLOT_FS_CONF_DIR": str(self.conf_dir),
            "KALLGLOT_LOG_LEVEL": os.environ.get("KALLGLOT_LOG_LEVEL", "INFO"),
        }
        if engine is not None:
            self.env["KALLGLOT_ENGINE"] = engine
        self.services = ServiceGroup(workdir, self.env)
        self.fs: Any = None
        self.org_id = ""
        self.api_key = ""
        self.bridge: Service | None = None

    # ------------------------------------------------------------------ life cycle
    def start(self) -> DemoStack:
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        org = run_cli(["org", "create", "Demo Contact Centre"], self.env)
        self.org_id = str(org["id"])
        self.api_key = str(run_cli(["key", "create", "--org", self.org_id], self.env)["key"])
        # The bridge loads its models while the rest starts.
        self.bridge = self.services.start("bridge")
        # First render (nothing enabled yet): the tree FreeSWITCH starts with.
        run_cli(["render"], self.env)
        self.fs = (self.switch_factory or _start_double)(self)
        api = self.services.start("api")
        ctl = self.services.start("controller")
        alive = [s for s in (api, ctl, self.bridge) if s is not None]
        tick = self.progress.tick
        wait_until("the API", lambda: self.api("GET", "/healthz")[0] == 200, 30, alive=alive, tick=tick)
        wait_until("the controller's outbound socket", lambda: _port_open(self.controller_port), 30,
                   alive=alive, tick=tick)
        wait_until("the bridge", lambda: self.bridge_health() is not None, 60, alive=alive, tick=tick)
        return self

    def close(self) -> None:
        try:
            self.services.stop_all()
        finally:
            if self.fs is not None:
                self.fs.stop()
                self.fs = None

    def __enter__(self) -> DemoStack:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ services
    def alive(self) -> list[Service]:
        return list(self.services.services)

    def api(self, method: str, path: str, body: dict[str, Any] | None = None, *,
            key: str | None = None) -> tuple[int, dict[str, Any]]:
        return http_json(method, f"http://127.0.0.1:{self.api_port}{path}", body, token=key or self.api_key)

    def api_ok(self, method: str, path: str, body: dict[str, Any] | None = None, *,
               key: str | None = None) -> dict[str, Any]:
        status, doc = self.api(method, path, body, key=key)
        if not 200 <= status < 300:
            err = doc.get("error", doc)
            raise DemoError(f"{method} {path} → HTTP {status}: {err}")
        return doc

    def create_org(self, name: str) -> tuple[str, str]:
        """Another organization and its API key, with the real CLI: (org id, key)."""
        org_id = str(run_cli(["org", "create", name], self.env)["id"])
        return org_id, str(run_cli(["key", "create", "--org", org_id], self.env)["key"])

    def bridge_health(self) -> dict[str, Any] | None:
        try:
            status, doc = http_json("GET", f"http://127.0.0.1:{self.bridge_port}/healthz", timeout=2)
        except DemoError:
            return None
        return doc if status == 200 else None

    def wait_engine_ready(self, timeout: float = 90.0) -> None:
        def ready() -> bool:
            health = self.bridge_health()
            return bool(health and health.get("engine_ready"))

        wait_until("the translation engine to load its models", ready, timeout, interval=0.1,
                   alive=self.alive(), tick=self.progress.tick)

    # ------------------------------------------------------------------ SIP settings
    def configure_sip(self, settings: dict[str, Any], *, key: str | None = None) -> dict[str, Any]:
        """PATCH /v1/sip, then render + reload FreeSWITCH; returns the reload outcome."""
        self.api_ok("PATCH", "/v1/sip", settings, key=key)
        return self.reload()

    def generate_credentials(self, *, key: str | None = None) -> dict[str, Any]:
        return self.api_ok("POST", "/v1/sip/credentials", key=key)

    def reload(self, *, restart_profile: bool = False) -> dict[str, Any]:
        """``POST /admin/reload``: render the store's settings and reload FreeSWITCH (the double).

        The API also reloads by itself a second after each settings change; this call makes the
        change effective now. Reloads hold the conf tree's lock, so when it returns any earlier
        one has finished too."""
        body = {"restart_profile": True} if restart_profile else None
        status, doc = http_json("POST", f"http://127.0.0.1:{self.api_port}/admin/reload", body,
                                token=self.env["KALLGLOT_ADMIN_TOKEN"], timeout=60)
        if status != 200:
            raise DemoError(f"POST /admin/reload → HTTP {status}: {doc.get('error', doc)}")
        return doc

    def sip_user_loaded(self, username: str) -> bool:
        return self.fs.config.find_user(self.sip_domain, username) is not None

    # ------------------------------------------------------------------ calls
    def place_call(self, destination: str, **spec: Any) -> Any:
        """A SIP call into the double (see tests.fsdouble.CallSpec); blocks until the final response."""
        spec.setdefault("domain", self.sip_domain)
        return self.fs.place_call(destination, **spec)
