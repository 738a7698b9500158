"""Child processes of ``kallglot demo`` (and the end-to-end tests): the real ``kallglot``
subcommands on 127.0.0.1, their logs kept in files, all of them stopped on the way out."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.demo.interrupt import raise_if_interrupted


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which and why (never a secret)."""


def free_port() -> int:
    """A TCP port free right now on 127.0.0.1 (for services that cannot report a port 0 bind)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kallglot_argv(*args: str) -> list[str]:
    """The ``kallglot`` console script, run with this interpreter (works from any venv)."""
    return [sys.executable, "-m", "controller.cli", *args]


def run_cli(args: Sequence[str], env: Mapping[str, str], *, timeout: float = 60.0) -> dict[str, Any]:
    """Run one ``kallglot`` command that prints JSON; its JSON, or DemoError with its stderr."""
    proc = subprocess.run(kallglot_argv(*args), env=dict(env), capture_output=True, text=True,
                          timeout=timeout, check=False)
    if proc.returncode != 0:
        raise DemoError(f"`kallglot {args[0]}` failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    try:
        doc = json.loads(proc.stdout)  # one JSON document, compact or indented
    except ValueError:
        raise DemoError(f"`kallglot {args[0]}` printed no JSON: {proc.stdout[-300:]!r}") from None
    if not isinstance(doc, dict):
        raise DemoError(f"`kallglot {args[0]}` printed {doc!r}, not a JSON object")
    return doc


@dataclass
class Service:
    """One long-running ``kallglot <name>`` subprocess (own process group, log in a file)."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def check_alive(self) -> None:
        code = self.proc.poll()
        if code is not None:
            raise DemoError(f"`kallglot {self.name}` exited with status {code}; its log ends with:\n"
                            f"{self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=timeout)


@dataclass
class ServiceGroup:
    """Starts services and stops every one of them, newest first, whatever happened."""

    log_dir: Path
    env: dict[str, str]
    services: list[Service] = field(default_factory=list)

    def start(self, name: str, *args: str, extra_env: Mapping[str, str] | None = None) -> Service:
        log_path = self.log_dir / f"{name}.log"
        log = log_path.open("wb")
        try:
            # Own session: a Ctrl-C in the terminal reaches the demo, which stops them in order.
            proc = subprocess.Popen(kallglot_argv(name, *args), env={**self.env, **(extra_env or {})},
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        service = Service(name, proc, log_path)
        self.services.append(service)
        return service

    def stop_all(self) -> None:
        for service in reversed(self.services):
            service.stop()
        self.services.clear()


def http_json(method: str, url: str, body: Mapping[str, Any] | None = None, *,
              token: str | None = None, timeout: float = 15.0) -> tuple[int, dict[str, Any]]:
    """One JSON request; (status, parsed body) for any HTTP status, DemoError if unreachable."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 -- our own 127.0.0.1 services
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        raise DemoError(f"{method} {url}: {exc}") from None
    try:
        doc = json.loads(raw) if raw else {}
    except ValueError:
        doc = {"raw": raw.decode(errors="replace")[:300]}
    return status, doc if isinstance(doc, dict) else {"value": doc}


def wait_until(what: str, probe: Callable[[], bool], timeout: float, *, interval: float = 0.1,
               alive: Sequence[Service] = (), tick: Callable[[], None] | None = None) -> None:
    """Poll ``probe`` until true; DemoError naming ``what`` on timeout or if a service died."""
    deadline = time.monotonic() + timeout
    while True:
        raise_if_interrupted()
        for service in alive:
            service.check_alive()
        try:
            if probe():
                return
        except DemoError:
            pass
        if time.monotonic() >= deadline:
            raise DemoError(f"timed out after {timeout:g} s waiting for {what}")
        if tick is not None:
            tick()
        time.sleep(interval)
