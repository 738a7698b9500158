"""``kallglot controller``: the outbound ESL server for calls plus one inbound ESL connection.

gevent's monkey patches are installed by ``controller.cli`` before this module is imported.
The inbound connection reconciles the store with FreeSWITCH on start, on every reconnect
(backoff 0.5 s → 10 s) and periodically: legs the store thinks live but FreeSWITCH no longer
has are ended, so a crash (even ``kill -9``) of the controller never leaks call slots. The same
pass adopts the calls an earlier controller left parked (controller/calls/adoption.py), so a
crash, restart or upgrade of the controller drops no call. SIGTERM hands live calls over
instead of hanging them up: new calls are refused (FreeSWITCH answers them 503 with
Retry-After while nothing listens) and the process exits without ending any call.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass

import gevent
import gevent.event

from controller.bridges.runtime import BridgePools
from controller.calls.adoption import adopt_parked_calls
from controller.calls.call_handler import CallConfig, CallSession
from controller.calls.legs import live_uuids_from_show_calls, reconcile
from controller.cluster import NodeAgent, NodeInfo
from controller.esl.connection import EslCommandError, EslError
from controller.esl.inbound import InboundClient
from controller.esl.outbound import OutboundCall, OutboundServer
from controller.metrics import REGISTRY, SIP_AUTH_EVENTS, OrgCallsCollector, SipAuthWatcher, serve_metrics
from controller.settings import Settings, SettingsError
from controller.store import Store, open_store

log = logging.getLogger("kallglot.calls.service")

BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 10.0


@dataclass(frozen=True)
class ReconcileConfig:
    interval_s: float = 30.0  # periodic reconciliation while connected
    grace_s: float = 2.0  # `show calls` lags new channels by ~200 ms; never touch younger legs

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReconcileConfig:
        env = os.environ if env is None else env
        values: dict[str, float] = {}
        for key, name in (("interval_s", "KALLGLOT_RECONCILE_INTERVAL_S"),
                          ("grace_s", "KALLGLOT_RECONCILE_GRACE_S")):
            raw = env.get(name)
            if raw:
                try:
                    values[key] = float(raw)
                except ValueError:
                    raise SettingsError(f"{name} must be a number, got {raw!r}") from None
                if values[key] <= 0:
                    raise SettingsError(f"{name} must be positive, got {raw!r}")
        return cls(**values)


def next_backoff(current: float) -> float:
    return min(current * 2, BACKOFF_MAX_S)


class ControllerService:
    def __init__(self, settings: Settings, store: Store, config: CallConfig,
                 reconcile_config: ReconcileConfig) -> None:
        self.settings = settings
        self.store = store
        self.config = config
        self.reconcile_config = reconcile_config
        self.server = OutboundServer(settings.controller_host, settings.controller_port, self._on_call)
        self._stopping = gevent.event.Event()
        self._stopped = gevent.event.Event()
        self.active_calls = 0
        self._inbound: InboundClient | None = None
        self._inbound_greenlet: gevent.Greenlet | None = None
        self.reconciled = 0  # reconciliation passes completed (for logs and tests)
        self.sessions: dict[str, CallSession] = {}  # call uuid -> the call this process drives
        self._pass_soon = gevent.event.Event()  # run a reconcile/adopt pass now, not at the interval
        self.sip_auth = SipAuthWatcher(store)  # FreeSWITCH's digest challenges/failures → metrics
        self.node_id = settings.node_name
        self.node_agent = NodeAgent(
            store, NodeInfo(self.node_id, f"{settings.esl_host}:{settings.esl_port}",
                            settings.node_sip_address, settings.node_region),
            heartbeat_s=settings.node_heartbeat_s, dead_after_s=settings.node_dead_after_s,
            probe=self._probe_freeswitch)
        self._node_greenlet: gevent.Greenlet | None = None
        # KALLGLOT_BRIDGE_POOLS: each session's region picks a healthy bridge (controller/bridges).
        self.bridge_pools = BridgePools.from_settings(settings, store)
        self._bridge_greenlet: gevent.Greenlet | None = None

    def _on_call(self, call: OutboundCall) -> None:
        self.active_calls += 1
        session = CallSession(call, self.store, self.config,
                              bridges=self.bridge_pools.router if self.bridge_pools else None)
        call_uuid = call.uuid
        if call_uuid:
            self.sessions[call_uuid] = session
        try:
            if self._stopping.is_set():
                session.hand_over()
            session.run()
        finally:
            if self.sessions.get(call_uuid) is session:
                del self.sessions[call_uuid]
            self.active_calls -= 1
            if session.detached:
                self._pass_soon.set()  # the call parks in FreeSWITCH: take it back at once

    def start(self) -> tuple[str, int]:
        self.node_agent.start()
        if self.bridge_pools is not None:
            self._bridge_greenlet = self.bridge_pools.start(self._stopping)
        self.server.start()
        self._node_greenlet = gevent.spawn(self.node_agent.run, self._stopping)
        self._inbound_greenlet = gevent.spawn(self._inbound_loop)
        return self.server.address

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop accepting and hand every live call over: its socket closes with the call still
        up, FreeSWITCH parks it, and the next controller adopts it. Nothing is hung up."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self.server.stop_accepting()
        for session in list(self.sessions.values()):
            session.hand_over()
        with gevent.Timeout(grace_s, False):
            while self.active_calls:
                gevent.sleep(0.05)
        if self._inbound is not None:
            self._inbound.close()
        if self._inbound_greenlet is not None:
            self._inbound_greenlet.join(timeout=5)
        if self._node_greenlet is not None:
            self._node_greenlet.join(timeout=5)
        self.node_agent.stop()
        self._stopped.set()

    def wait(self) -> None:
        self._stopped.wait()

    # -- inbound connection: reconciliation ----------------------------------------------------
    def _inbound_loop(self) -> None:
        s = self.settings
        backoff = BACKOFF_START_S
        while not self._stopping.is_set():
            try:
                client = InboundClient.connect(s.esl_host, s.esl_port, s.esl_password, timeout=5.0)
            except EslError as exc:
                log.warning(json.dumps({"event": "esl_connect_failed", "error": str(exc),
                                        "retry_in_s": backoff}, separators=(",", ":")))
                if self._stopping.wait(backoff):
                    return
                backoff = next_backoff(backoff)
                continue
            backoff = BACKOFF_START_S
            self._inbound = client
            log.info(json.dumps({"event": "esl_connected", "host": s.esl_host, "port": s.esl_port},
                                separators=(",", ":")))
            try:
                self._watch_sip_auth(client)
                while not self._stopping.is_set() and not client.closed:
                    self._pass_soon.clear()
                    self.reconcile_once(client)
                    gevent.wait([client.closed_event, self._pass_soon],
                                timeout=self.reconcile_config.interval_s, count=1)
            except EslError as exc:
                log.warning(json.dumps({"event": "esl_lost", "error": str(exc)}, separators=(",", ":")))
            finally:
                self._inbound = None
                client.close()

    def _watch_sip_auth(self, client: InboundClient) -> None:
        """sofia's CUSTOM auth events (``event plain CUSTOM sofia::pre_register …``) on this connection."""
        for key in SIP_AUTH_EVENTS:
            client.on(key, self.sip_auth.on_event)
        try:
            client.subscribe(*SIP_AUTH_EVENTS, timeout=10.0)
        except EslCommandError as exc:  # calls still work; only the auth counters stay at zero
            log.warning(json.dumps({"event": "sip_auth_events_refused", "error": str(exc)},
                                   separators=(",", ":")))

    def _probe_freeswitch(self, esl_address: str) -> set[str] | None:
        """The calls a silent node's FreeSWITCH still has (its controller is gone, its calls may
        not be), or None when it cannot be asked. Nodes share KALLGLOT_ESL_PASSWORD."""
        host, _, port = esl_address.rpartition(":")
        try:
            client = InboundClient.connect(host, int(port), self.settings.esl_password, timeout=2.0)
        except (EslError, ValueError):
            return None
        try:
            return live_uuids_from_show_calls(client.api("show calls as json", timeout=5.0))
        except (EslError, ValueError):
            return None
        finally:
            client.close()

    def reconcile_once(self, client: InboundClient) -> int:
        reply = client.api("show calls as json", timeout=10.0)
        try:
            live = live_uuids_from_show_calls(reply)
        except ValueError as exc:
            log.warning(json.dumps({"event": "reconcile_skipped", "error": str(exc)}, separators=(",", ":")))
            return 0
        now = time.time()
        # Only this node's legs: other nodes' calls are not in this FreeSWITCH's list.
        ended = reconcile(self.store, live, now=now, grace_s=self.reconcile_config.grace_s,
                          node_id=self.node_id)
        adoption = None
        if not self._stopping.is_set():
            adoption = adopt_parked_calls(self.store, lambda cmd: client.api(cmd, timeout=10.0), live,
                                          set(self.sessions), grace_s=self.reconcile_config.grace_s, now=now)
        self.reconciled += 1
        log.info(json.dumps({"event": "reconciled", "live_channels": len(live), "legs_ended": len(ended),
                             "adopted": len(adoption.adopted) if adoption else 0,
                             "orphans_ended": len(adoption.ended) if adoption else 0},
                            separators=(",", ":")))
        return len(ended)


def cli_run(args: argparse.Namespace, settings: Settings) -> int:
    logging.basicConfig(level=getattr(logging, settings.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)
    try:
        config = CallConfig.from_settings(settings)
        reconcile_config = ReconcileConfig.from_env()
    except SettingsError as exc:
        print(json.dumps({"error": str(exc)}), file=sys.stderr)
        return 2
    store = open_store(settings.db_path)
    service = ControllerService(settings, store, config, reconcile_config)
    try:
        host, port = service.start()
    except OSError as exc:
        print(json.dumps({"error": f"cannot listen on {settings.controller_host}:"
                                   f"{settings.controller_port}: {exc.strerror or exc}"}), file=sys.stderr)
        return 1
    metrics_port = _start_metrics(settings, store)
    # One JSON line on stdout once the socket listens (port 0 picks a free one).
    print(json.dumps({"event": "listening", "host": host, "port": port, "metrics_port": metrics_port}),
          flush=True)
    gevent.signal_handler(signal.SIGTERM, service.stop)
    gevent.signal_handler(signal.SIGINT, service.stop)
    service.wait()
    store.close()
    return 0


def _start_metrics(settings: Settings, store: Store) -> int | None:
    """``GET /metrics`` on KALLGLOT_CONTROLLER_METRICS_HOST:PORT; its port, or None when it cannot
    bind — calls matter more than metrics, and Prometheus shows the target down."""
    REGISTRY.register(OrgCallsCollector(store))
    try:
        server = serve_metrics(settings.controller_metrics_host, settings.controller_metrics_port, REGISTRY)
    except OSError as exc:
        log.error(json.dumps({"event": "metrics_unavailable", "error": f"cannot listen on "
                              f"{settings.controller_metrics_host}:{settings.controller_metrics_port}: "
                              f"{exc.strerror or exc}"}, separators=(",", ":")))
        return None
    return server.address[1]
