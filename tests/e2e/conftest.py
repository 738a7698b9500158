"""One running edge (api + controller + bridge subprocesses and a FreeSWITCH) shared by the
end-to-end tests, once with the FreeSWITCH double and once with a real FreeSWITCH 1.10.12: a local
build named by KALLGLOT_FREESWITCH_PREFIX, or else the image of docker-compose.yml (skipped, with
the reason, where neither is here; tests/e2e/real_switch.py).
The demo flow test starts its own edge."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.demo.stack import DemoStack


@dataclass
class Tenant:
    """An organization with SIP enabled and its generated credentials."""

    org_id: str
    key: str
    username: str
    password: str

    def credentials(self, password: str | None = None) -> dict[str, str]:
        return {"user": self.username, "password": password or self.password}


@dataclass
class Edge:
    backend: str  # "double" | "freeswitch"
    stack: DemoStack
    acme: Tenant  # the organization each test reconfigures
    other: Tenant  # keeps UDP/TCP/TLS bound on the shared profile whatever acme requires

    def new_session(self) -> str:
        """A fresh SIP session of acme (a session ends with its last leg once a call took place)."""
        doc = self.stack.api_ok("POST", "/v1/sessions", {"routing": {"type": "sip"}}, key=self.acme.key)
        return str(doc["id"])

    def wait_session_status(self, session_id: str, status: str, timeout: float = 10.0,
                            key: str | None = None) -> None:
        """The controller ends a session (and frees its slot) when its last leg's hangup arrives."""
        deadline = time.monotonic() + timeout
        while True:
            doc = self.stack.api_ok("GET", f"/v1/sessions/{session_id}", key=key or self.acme.key)
            if doc["status"] == status:
                return
            assert time.monotonic() < deadline, f"session {session_id} is {doc['status']}, not {status}"
            time.sleep(0.05)

    def live_channels(self) -> int:
        """Channels FreeSWITCH holds now (``show channels as json`` over inbound ESL)."""
        import json

        from controller.esl.inbound import InboundClient

        with InboundClient.connect("127.0.0.1", self.stack.esl_port, self.stack.esl_password,
                                   timeout=5) as esl:
            reply = str(esl.api("show channels as json"))
        return int(json.loads(reply).get("row_count", 0))

    def configure(self, **settings: object) -> dict[str, object]:
        """acme's SIP settings: the baseline, with ``settings`` on top, applied and reloaded."""
        body: dict[str, object] = {
            "enabled": True, "ip_allowlist": [], "require_tls": False, "require_srtp": False,
            "allowed_transports": ["tls", "tcp", "udp"], "max_concurrent_calls": 10}
        body.update(settings)
        return self.stack.configure_sip(body, key=self.acme.key)


def _tenant(stack: DemoStack, org_id: str, key: str) -> Tenant:
    stack.api_ok("PATCH", "/v1/sip", {"enabled": True}, key=key)
    creds = stack.generate_credentials(key=key)
    return Tenant(org_id, key, str(creds["username"]), str(creds["password"]))


@pytest.fixture(scope="package", params=["double", "freeswitch"])
def edge(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    factory = None
    if request.param == "freeswitch":
        from tests.e2e.real_switch import available

        factory, why = available()
        if factory is None:
            pytest.skip(f"real FreeSWITCH: {why}")

    workdir: Path = tmp_path_factory.mktemp(f"edge-{request.param}")
    # The rejection tests need no translation: the passthrough engine starts at once.
    with DemoStack(workdir, engine="passthrough", switch_factory=factory) as stack:
        acme = _tenant(stack, stack.org_id, stack.api_key)
        other = _tenant(stack, *stack.create_org("Other"))
        stack.reload()
        yield Edge(request.param, stack, acme, other)
