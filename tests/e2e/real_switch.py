"""The real FreeSWITCH of docker-compose.yml (image ``kallglot/freeswitch:local``, built with
``docker compose build freeswitch``) as the switch of a ``DemoStack``, driven with the docker SDK.

Host networking, so FreeSWITCH reaches the controller and bridge subprocesses on 127.0.0.1 and
the tests reach its SIP and ESL ports; the container runs as the current user so it can read
the rendered tree (secrets are 0600). ``available()`` says why these tests cannot run here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.demo_procs import free_port
from controller.demo_stack import DemoStack
from tests.e2e.sip_ua import CallResult, SipCall

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("KALLGLOT_E2E_FREESWITCH_IMAGE", "kallglot/freeswitch:local")


def available() -> tuple[Any, str]:
    """(docker client, "") when a Docker engine answers and the image exists, else (None, why)."""
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
    def transport_error(self) -> str:
        return self.result.error

    def hangup(self) -> None:
        if self.result.code == 200:
            self.call.bye()
        else:
            self.call.close()

    def wait_ended(self, timeout: float | None = None) -> bool:
        return True  # bye() waits for the 200 to the BYE


class DockerFreeSwitch:
    def __init__(self, client: Any, stack: DemoStack) -> None:
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
        tls_dir = stack.workdir / "tls"
        _self_signed_tls(tls_dir)
        self.container = client.containers.run(
            IMAGE, detach=True, network_mode="host", user=f"{os.getuid()}:{os.getgid()}",
            environment={
                "KALLGLOT_ESL_PASSWORD": stack.esl_password, "KALLGLOT_ESL_PORT": str(stack.esl_port),
                "KALLGLOT_FS_ESL_LISTEN_IP": "127.0.0.1", "KALLGLOT_FS_SIP_IP": "127.0.0.1",
                "KALLGLOT_FS_EXTERNAL_IP": "127.0.0.1", "KALLGLOT_FS_SIP_PORT": str(self.sip_port),
                "KALLGLOT_FS_TLS_PORT": str(self.tls_port)},
            volumes={str(stack.conf_dir): {"bind": "/etc/kallglot/freeswitch", "mode": "ro"},
                     str(tls_dir): {"bind": "/etc/kallglot/tls", "mode": "ro"}})
        self._wait_ready(60)

    def _wait_ready(self, timeout: float) -> None:
        from controller.esl.connection import EslError
        from controller.esl.inbound import InboundClient

        deadline = time.monotonic() + timeout
        while True:
            try:
                with InboundClient.connect("127.0.0.1", self.stack.esl_port, self.stack.esl_password,
                                           timeout=5) as esl:
                    if "is ready" in esl.api("status"):
                        return
            except (EslError, OSError):
                pass
            if time.monotonic() > deadline:
                logs = self.container.logs(tail=40).decode(errors="replace")
                raise RuntimeError(f"FreeSWITCH container not ready after {timeout:g} s:\n{logs}")
            time.sleep(0.5)

    def place_call(self, destination: str, *, domain: str, user: str | None = None,
                   password: str | None = None, transport: str = "udp",
                   codecs: tuple[str, ...] = ("PCMU", "PCMA"), crypto: bool = False,
                   headers: dict[str, str] | None = None, source_ip: str = "127.0.0.1") -> RealCall:
        if source_ip != "127.0.0.1":
            raise ValueError("a real caller can only use this host's address")
        port = self.tls_port if transport == "tls" else self.sip_port
        call = SipCall(("127.0.0.1", port), destination, domain, user=user, password=password,
                       transport=transport, codecs=codecs, crypto=crypto, headers=headers)
        return RealCall(call.invite(), call)

    def stop(self) -> None:
        try:
            self.container.remove(force=True)
        except Exception:  # already gone
            return
