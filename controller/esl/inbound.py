"""Inbound ESL client: we connect to FreeSWITCH's event socket (port 8021) and authenticate.

Used by the controller (monkey-patched gevent) and by the API process from a worker thread
(plain gevent, one hub per thread): create, use and close the client in the same thread.
"""

from __future__ import annotations

import gevent
import gevent.event
import gevent.socket

from controller.esl.connection import (
    DEFAULT_TIMEOUT,
    EslAuthError,
    EslCommandError,
    EslConnection,
    EslDisconnected,
    EslTimeout,
)
from controller.esl.protocol import Event


class InboundClient(EslConnection):
    """``with InboundClient.connect(host, port, password) as esl: esl.api("status")``."""

    def __init__(self) -> None:
        super().__init__()
        self._jobs: dict[str, gevent.event.AsyncResult] = {}
        self._early_jobs: dict[str, Event] = {}
        self._job_subscribed = False

    @classmethod
    def connect(cls, host: str, port: int, password: str, timeout: float = DEFAULT_TIMEOUT) -> InboundClient:
        """Connect and authenticate; raises EslAuthError (wrong password), EslTimeout, EslDisconnected."""
        client = cls()
        try:
            client._open(host, port, password, timeout)
        except BaseException:
            client.close()
            raise
        return client

    def _open(self, host: str, port: int, password: str, timeout: float) -> None:
        try:
            self.sock = gevent.socket.create_connection((host, port), timeout=timeout)
        except TimeoutError as exc:
            raise EslTimeout(f"ESL connect to {host}:{port} timed out after {timeout:g} s") from exc
        except OSError as exc:
            raise EslDisconnected(f"ESL connect to {host}:{port} failed: {exc.strerror or exc}") from exc
        self.sock.settimeout(None)
        self.connected = True
        self.start_event_handlers()
        if not self._auth_request.wait(timeout):
            raise EslTimeout(f"no auth/request from {host}:{port} within {timeout:g} s")
        if self.rejection is not None:
            raise EslAuthError(f"FreeSWITCH at {host}:{port} refused this client by its ESL ACL "
                               f"(event_socket.conf apply-inbound-acl): {self.rejection}")
        if self.closed:
            raise EslDisconnected(f"{host}:{port} closed the connection before authentication")
        if any(c in password for c in "\r\n"):
            raise EslAuthError("ESL password must not contain a line break")
        reply = self.send_raw(f"auth {password}\n\n".encode(), "auth", timeout)
        if reply.reply_text != "+OK accepted":
            # The password is never echoed: the error names only the peer.
            raise EslAuthError(f"FreeSWITCH at {host}:{port} refused the ESL password ({reply.reply_text})")

    def __enter__(self) -> InboundClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.exit()

    # -- background jobs ------------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        if event.name != "BACKGROUND_JOB":
            return
        job = event.get("Job-UUID")
        waiter = self._jobs.pop(job, None)
        if waiter is not None:
            waiter.set(event)
        else:
            # Kept briefly for bgapi_result racing its own event; bounded for fire-and-forget jobs.
            self._early_jobs[job] = event
            while len(self._early_jobs) > 64:
                self._early_jobs.pop(next(iter(self._early_jobs)))

    def bgapi(self, cmd: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        """``bgapi <cmd>``: returns the Job-UUID. The result comes as a BACKGROUND_JOB event, only
        to connections subscribed to it: call ``bgapi_result`` (it subscribes) to wait for it."""
        reply = self.command(f"bgapi {cmd}", timeout=timeout)
        job = reply.headers.get("Job-UUID", "")
        if not reply.ok or not job:
            raise EslCommandError(cmd, reply.reply_text)
        return job

    def bgapi_result(self, cmd: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        """Run ``cmd`` in the background and wait for its output (the BACKGROUND_JOB body)."""
        if not self._job_subscribed:
            self.subscribe("BACKGROUND_JOB", timeout=timeout)
            self._job_subscribed = True
        waiter = gevent.event.AsyncResult()
        job = self.bgapi(cmd, timeout)
        early = self._early_jobs.pop(job, None)
        if early is not None:
            return early.body_text()
        self._jobs[job] = waiter
        try:
            event: Event = waiter.get(timeout=timeout)
        except gevent.Timeout:
            self._jobs.pop(job, None)
            raise EslTimeout(f"no BACKGROUND_JOB for {cmd.split(' ', 1)[0]} within {timeout:g} s") from None
        return event.body_text()
