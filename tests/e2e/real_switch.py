"""A real FreeSWITCH 1.10.12 + mod_audio_stream as the switch of a ``DemoStack``.

Two ways to have one (``available()`` picks, or says why neither is here):
- a local build from ``docker/build-freeswitch.sh``: ``KALLGLOT_FREESWITCH_PREFIX`` names its
  prefix, and FreeSWITCH runs as a child process of the tests;
- the image of docker-compose.yml (``kallglot/freeswitch:local``, ``docker compose build
  freeswitch``), driven with the docker SDK on the host network.
Either way FreeSWITCH reads the stack's conf dir (the static base tree copied beside the rendered
files), listens on 127.0.0.1 on free SIP/TLS ports, and reaches the controller and bridge
subprocesses there. The tests place calls with ``tests/e2e/sip_ua.py`` (real SIP, real RTP).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.demo.procs import free_port, run_cli
from controller.demo.stack import DemoStack
from tests.e2e.rtp import RtpEndpoint
from tests.e2e.sip_ua import CallResult, SipCall

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("KALLGLOT_E2E_FREESWITCH_IMAGE", "kallglot/freeswitch:local")
PREFIX_ENV = "KALLGLOT_FREESWITCH_PREFIX"
TLS_DIR_IN_IMAGE = "/etc/kallglot/tls"

SwitchFactory = Callable[[DemoStack], "RealFreeSwitch"]


def available() -> tuple[SwitchFactory | None, str]:
    """(factory, "") for a real FreeSWITCH this machine has, else (None, why not)."""
    prefix = os.environ.get(PREFIX_ENV)
    if prefix:
        why = local_build_problem(Path(prefix))
        if why:
            return None, why
        return (lambda stack: LocalFreeSwitch(Path(prefix), stack)), ""
    client, why = _docker_client()
    if client is None:
        return None, f"{PREFIX_ENV} is not set (docker/build-freeswitch.sh) and {why}"
    return (lambda stack: DockerFreeSwitch(client, stack)), ""


def local_build_problem(prefix: Path) -> str:
    for needed in ("bin/freeswitch", "lib/freeswitch/mod/mod_audio_stream.so",
                   "lib/freeswitch/mod/mod_sofia.so"):
        if not (prefix / needed).exists():
            return f"{PREFIX_ENV}={prefix} has no {needed} (run docker/build-freeswitch.sh --prefix {prefix})"
    return ""


def _docker_client() -> tuple[Any, str]:
    try:
        import docker  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        docker = None
    if docker is None or not hasattr(docker, "from_env"):  # not the repo's docker/ folder
        return None, "the docker Python SDK is not installed (pip install -e '.[test]')"
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # any failure to reach the engine means: not here
        return None, f"no Docker engine reachable ({type(exc).__name__}: {str(exc)[:120]})"
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        return None, f"image {IMAGE} not built (docker compose build freeswitch)"
    return client, ""


def _self_signed_tls(tls_dir: Path) -> None:
    """FreeSWITCH's agent.pem (key + certificate) and cafile.pem for the TLS transport."""
    tls_dir.mkdir(parents=True, exist_ok=True)
    key, crt = tls_dir / "key.pem", tls_dir / "crt.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True, timeout=60)
    (tls_dir / "agent.pem").write_bytes(key.read_bytes() + crt.read_bytes())
    (tls_dir / "cafile.pem").write_bytes(crt.read_bytes())


@dataclass
class RealCall:
    """What a caller saw, in the shape the rejection tests read (``uuid`` is unknown here)."""

    result: CallResult
    call: SipCall
    uuid: None = None

    @property
    def code(self) -> int | None:
        return self.result.code

    @property
    def reason(self) -> str:
        return self.result.reason

    @property
    def headers(self) -> dict[str, str]:
        return self.result.headers

    @property
    def challenged(self) -> bool:
        return self.result.challenged

    @property
    def srtp(self) -> bool:
        return self.result.srtp

    @property
    def codec(self) -> str:
        return self.result.codec

    @property
    def transport_error(self) -> str:
        return self.result.error

    @property
    def rtp(self) -> RtpEndpoint | None:
        return self.call.rtp

    def hangup(self) -> None:
        if self.result.code == 200:
            self.call.bye()
        else:
            self.call.close()

    def wait_ended(self, timeout: float | None = None) -> bool:
        return True  # bye() waits for the 200 to the BYE

    def wait_switch_bye(self, timeout: float) -> bool:
        """True once the switch hung the call up (its BYE, answered 200)."""
        return self.call.wait_bye(timeout)


class RealFreeSwitch:
    """What both launchers share: the conf tree, TLS files, readiness, and placing calls."""

    backend = "freeswitch"

    def __init__(self, stack: DemoStack, tls_dir_seen_by_switch: str | None = None) -> None:
        self.stack = stack
        self.sip_port, self.tls_port = free_port(), free_port()
        base = ROOT / "freeswitch-conf"
        for item in base.iterdir():  # the static base tree beside the rendered/ link
            if item.name not in ("rendered", ".gitignore") and not item.name.startswith("."):
                target = stack.conf_dir / item.name
                if item.is_dir():
                    shutil.copytree(item, target, dirs_exist_ok=True)
                else:
                    shutil.copy2(item, target)
        self.tls_dir = stack.workdir / "tls"
        _self_signed_tls(self.tls_dir)
        # Rendered files name the certificate directory as FreeSWITCH sees it: render again
        # with it (the stack's first render ran before this switch existed).
        stack.env["KALLGLOT_TLS_CERT_DIR"] = tls_dir_seen_by_switch or str(self.tls_dir)
        run_cli(["render"], stack.env)
        self.env = {
            "KALLGLOT_ESL_PASSWORD": stack.esl_password, "KALLGLOT_ESL_PORT": str(stack.esl_port),
            "KALLGLOT_FS_ESL_LISTEN_IP": "127.0.0.1", "KALLGLOT_FS_SIP_IP": "127.0.0.1",
            "KALLGLOT_FS_EXTERNAL_IP": "127.0.0.1", "KALLGLOT_FS_SIP_PORT": str(self.sip_port),
            "KALLGLOT_FS_TLS_PORT": str(self.tls_port)}
        # Two switches on one host need their own RTP ranges (FreeSWITCH does not test-bind them).
        for name in ("KALLGLOT_RTP_START_PORT", "KALLGLOT_RTP_END_PORT"):
            if name in stack.env:
                self.env[name] = stack.env[name]

    # ------------------------------------------------------------------ launcher hooks
    def running(self) -> bool:
        raise NotImplementedError

    def log_tail(self, lines: int = 40) -> str:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ shared
    def api(self, command: str, timeout: float = 10.0) -> str:
        """One ``api`` command over a fresh inbound ESL connection."""
        from controller.esl.inbound import InboundClient

        with InboundClient.connect("127.0.0.1", self.stack.esl_port, self.stack.esl_password,
                                   timeout=timeout) as esl:
            return str(esl.api(command))

    def wait_ready(self, timeout: float) -> float:
        """Seconds until ``status`` says "is ready": ESL answers, and ``status`` says UP, while
        modules are still loading."""
        from controller.esl.connection import EslError

        started = time.monotonic()
        deadline = started + timeout
        while True:
            if not self.running():
                raise RuntimeError(f"FreeSWITCH exited while starting:\n{self.log_tail()}")
            try:
                if "is ready" in self.api("status", timeout=5):
                    return time.monotonic() - started
            except (EslError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"FreeSWITCH not ready after {timeout:g} s:\n{self.log_tail()}")
            time.sleep(0.2)

    def ready_or_stopped(self, timeout: float) -> float:
        """``wait_ready``; a switch that does not come up is stopped before the error goes on."""
        try:
            return self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def place_call(self, destination: str, *, domain: str, user: str | None = None,
                   password: str | None = None, transport: str = "udp",
                   codecs: tuple[str, ...] = ("PCMU", "PCMA"), crypto: bool = False,
                   headers: dict[str, str] | None = None, source_ip: str = "127.0.0.1",
                   rtp: bool = False, rtp_loss_pct: float = 0.0, rtp_jitter_ms: float = 0.0,
                   rtp_stops_after_s: float | None = None) -> RealCall:
        """A SIP call; with ``rtp`` the caller sends (silence, or what ``call.rtp.say`` queues)
        and records RTP for the whole call; ``rtp_*`` shape what it sends, as in the double's
        CallSpec (and imply ``rtp``)."""
        rtp = rtp or bool(rtp_loss_pct or rtp_jitter_ms) or rtp_stops_after_s is not None
        if source_ip != "127.0.0.1":
            raise ValueError("a real caller can only use this host's address")
        port = self.tls_port if transport == "tls" else self.sip_port
        endpoint = RtpEndpoint(codecs[0] if codecs[0] in ("PCMU", "PCMA") else "PCMU", loss_pct=rtp_loss_pct,
                               jitter_ms=rtp_jitter_ms, stops_after_s=rtp_stops_after_s) if rtp else None
        call = SipCall(("127.0.0.1", port), destination, domain, user=user, password=password,
                       transport=transport, codecs=codecs, crypto=crypto, headers=headers, rtp=endpoint)
        result = call.invite()
        if result.code != 200 and endpoint is not None:
            endpoint.stop()
        return RealCall(result, call)

    def channel_count(self) -> int:
        """Live channels, from ``show channels count`` ("N total.")."""
        reply = self.api("show channels count").strip()
        return int(reply.split()[0]) if reply and reply.split()[0].isdigit() else -1


class LocalFreeSwitch(RealFreeSwitch):
    """FreeSWITCH from a local build's prefix, as a child process of the tests."""

    def __init__(self, prefix: Path, stack: DemoStack) -> None:
        super().__init__(stack)
        self.prefix = prefix
        run = stack.workdir / "freeswitch-run"
        dirs = {name: run / name for name in ("log", "db", "run", "temp")}
        for path in dirs.values():
            path.mkdir(parents=True, exist_ok=True)
        self.log_path = dirs["log"] / "console.log"
        self._log = self.log_path.open("wb")
        argv = [str(prefix / "bin" / "freeswitch"), "-nf", "-nc", "-nonat", "-conf", str(stack.conf_dir),
                *[arg for name, path in dirs.items() for arg in (f"-{name}", str(path))]]
        self.proc = subprocess.Popen(argv, env={**os.environ, **self.env}, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.ready_s = self.ready_or_stopped(60)

    def running(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        freeswitch_log = self.log_path.parent / "freeswitch.log"
        path = freeswitch_log if freeswitch_log.exists() else self.log_path
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()


class DockerFreeSwitch(RealFreeSwitch):
    """The compose file's FreeSWITCH image on the host network, run as the invoking user so that
    it can read the rendered tree (secrets are 0600)."""

    def __init__(self, client: Any, stack: DemoStack) -> None:
        super().__init__(stack, tls_dir_seen_by_switch=TLS_DIR_IN_IMAGE)
        self.container = client.containers.run(
            IMAGE, detach=True, network_mode="host", user=f"{os.getuid()}:{os.getgid()}",
            environment=self.env,
            volumes={str(stack.conf_dir): {"bind": "/etc/kallglot/freeswitch", "mode": "ro"},
                     str(self.tls_dir): {"bind": TLS_DIR_IN_IMAGE, "mode": "ro"}})
        self.ready_s = self.ready_or_stopped(60)

    def running(self) -> bool:
        self.container.reload()
        return str(self.container.status) in ("created", "running")

    def log_tail(self, lines: int = 40) -> str:
        return str(self.container.logs(tail=lines).decode(errors="replace"))

    def stop(self) -> None:
        try:
            self.container.remove(force=True)
        except Exception:  # already gone
            return
