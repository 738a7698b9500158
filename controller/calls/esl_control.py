"""``CallControl`` for the API process: hang up and originate legs over short-lived ESL connections.

Blocking by design (ESL round trips): the API calls it from a worker thread (``asyncio.to_thread``).
Each call opens its own inbound connection in the calling thread (gevent gives every thread its
own hub) and closes it before returning. ``originate`` runs as ``bgapi`` so the HTTP request does
not wait for the callee to answer; a thread of its own waits for the job's result and ends the
leg when the call could not be placed, so a failed dial never holds a call slot.

Several nodes (docs/multi-node.md): a leg's ``node_id`` picks the FreeSWITCH it talks to (the
node's registered ESL address; the configured KALLGLOT_ESL_HOST/PORT when the leg has no node or
the node is unknown). Hang-ups on several nodes run side by side, each bounded by the connect
and command timeouts, so a dead node delays the others by nothing and the caller by seconds.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from controller.calls.adoption import ATTACH_EXTENSION
from controller.calls.legs import end_leg
from controller.cluster.routing import EslTarget, default_target, target_for_node, targets_for_calls
from controller.esl.connection import EslError
from controller.esl.inbound import InboundClient
from controller.settings import Settings
from controller.store import Store

log = logging.getLogger("kallglot.calls.esl_control")

_UUID = re.compile(r"^[0-9A-Za-z-]{1,64}$")
_TOKEN = re.compile(r"^[0-9A-Za-z_.-]{1,128}$")  # ids, gateway names, hangup causes
_DIAL_TARGET = re.compile(r"^\+?[0-9]{2,15}$")


class CallControlError(Exception):
    """FreeSWITCH could not do what was asked (the message carries its reply, never a secret)."""


class EslCallControl:
    """Implements ``controller.appkeys.CallControl``."""

    def __init__(self, settings: Settings, store: Store, *, timeout: float = 10.0,
                 originate_timeout_s: int = 60, connect_timeout: float = 5.0) -> None:
        self.settings = settings
        self.store = store
        self.timeout = timeout
        self.originate_timeout_s = originate_timeout_s
        # A node whose host is gone may not even refuse: bound the wait for its socket.
        self.connect_timeout = min(connect_timeout, timeout)

    def _connect(self, target: EslTarget | None = None) -> InboundClient:
        target = target or default_target(self.settings)
        return InboundClient.connect(target.host, target.port, self.settings.esl_password,
                                     timeout=self.connect_timeout)

    def hangup(self, call_uuids: Sequence[str], cause: str = "NORMAL_CLEARING") -> list[str]:
        """Kill each channel on the FreeSWITCH that holds its leg. A node that cannot be reached
        is logged (``hangup_node_unreachable``) and the others still hang up; only when no node
        could be reached is the error raised."""
        uuids = [u for u in call_uuids if _UUID.match(u)]
        if not uuids:
            return []
        if not _TOKEN.match(cause):
            raise ValueError(f"bad hangup cause {cause!r}")
        groups = list(targets_for_calls(self.store, self.settings, uuids).items())
        if len(groups) == 1:  # one FreeSWITCH (always so on a single node): as before nodes
            target, group = groups[0]
            return self._hangup_on(target, group, cause)
        with ThreadPoolExecutor(len(groups), thread_name_prefix="hangup") as pool:
            futures = [(t, g, pool.submit(self._hangup_on, t, g, cause)) for t, g in groups]
        done: list[str] = []
        failures: list[Exception] = []
        for target, group, future in futures:
            try:
                done += future.result()
            except Exception as exc:  # one node's trouble must not keep the others' legs up
                failures.append(exc)
                log.warning(json.dumps({"event": "hangup_node_unreachable", "node_id": target.node_id,
                                        "esl_address": target.address, "call_uuids": group,
                                        "error": f"{type(exc).__name__}: {exc}"}, separators=(",", ":")))
        if len(failures) == len(futures):
            raise failures[0]
        return [u for u in uuids if u in done]

    def _hangup_on(self, target: EslTarget, call_uuids: list[str], cause: str) -> list[str]:
        done: list[str] = []
        with self._connect(target) as esl:
            for call_uuid in call_uuids:
                reply = esl.api(f"uuid_kill {call_uuid} {cause}", timeout=self.timeout)
                if reply.startswith("+OK"):
                    done.append(call_uuid)
                else:
                    log.info("uuid_kill %s on %s: %s", call_uuid, target.address, reply.strip())
        return done

    def dial_string(self, session_id: str, leg_id: str, call_uuid: str, role: str, to: str,
                    gateway: str, caller_id: str | None = None) -> str:
        for name, value in (("session_id", session_id), ("leg_id", leg_id), ("role", role),
                            ("gateway", gateway)):
            if not _TOKEN.match(value):
                raise ValueError(f"{name} has characters a dial string cannot carry")
        if not _UUID.match(call_uuid):
            raise ValueError("call uuid has characters a dial string cannot carry")
        if not _DIAL_TARGET.match(to):
            raise ValueError("to must be an E.164 number")
        if caller_id is not None and not _DIAL_TARGET.match(caller_id):
            raise ValueError("caller id must be an E.164 number")
        assignments = [
            f"origination_uuid={call_uuid}",
            f"kallglot_session_id={session_id}",
            f"kallglot_leg_id={leg_id}",
            f"kallglot_role={role}",
            f"originate_timeout={int(self.originate_timeout_s)}",
        ]
        if caller_id is not None:
            # Gateways send caller-id-in-from: without this, providers see 0000000000 and
            # Twilio/Telnyx refuse numbers the account does not own.
            assignments.append(f"origination_caller_id_number={caller_id}")
        variables = ",".join(assignments)
        # The answered leg runs the dialplan's kallglot_attach extension (socket to the controller,
        # then park if that socket closes with the call up), not `&socket(...)`: with a bare
        # application the leg would hang up whenever its controller went away.
        return f"{{{variables}}}sofia/gateway/{gateway}/{to} {ATTACH_EXTENSION}"

    def caller_id(self, session_id: str, gateway: str) -> str | None:
        """The number an outbound leg presents: the session's managed number, else the oldest
        active number on the connection it dials through (gateways are named by connection id)."""
        row = self.store.query_one(
            """SELECT s.phone_number FROM sessions s JOIN phone_numbers p ON p.number = s.phone_number
                WHERE s.id = ? AND p.connection_id = ? AND p.status = 'active'""",
            (session_id, gateway),
        )
        if row is None:
            row = self.store.query_one(
                "SELECT number AS phone_number FROM phone_numbers WHERE connection_id = ? "
                "AND status = 'active' ORDER BY created_at, id LIMIT 1",
                (gateway,),
            )
        return str(row["phone_number"]) if row is not None else None

    def originate(self, session_id: str, leg_id: str, role: str, to: str, gateway: str) -> str:
        row = self.store.query_one("SELECT call_uuid, node_id FROM call_legs WHERE id = ?", (leg_id,))
        if row is None:
            raise CallControlError(f"no call leg {leg_id}")
        call_uuid = str(row["call_uuid"])
        # The leg was reserved on the node chosen for it (dial.py): originate on that FreeSWITCH.
        target = target_for_node(self.store, self.settings, row["node_id"])
        caller_id = self.caller_id(session_id, gateway)
        if caller_id is None:
            log.warning("dial %s for %s: no managed number on %s to present as caller id",
                        leg_id, session_id, gateway)
        command = "originate " + self.dial_string(session_id, leg_id, call_uuid, role, to, gateway,
                                                  caller_id)
        started: queue.Queue[tuple[bool, str]] = queue.Queue()
        worker = threading.Thread(target=self._originate_worker, args=(command, call_uuid, started, target),
                                  name=f"originate-{leg_id}", daemon=True)
        worker.start()
        try:
            ok, detail = started.get(timeout=self.timeout * 3)
        except queue.Empty:
            raise CallControlError("FreeSWITCH did not accept the originate in time") from None
        if not ok:
            raise CallControlError(detail)
        return call_uuid

    def _originate_worker(self, command: str, call_uuid: str, started: queue.Queue[tuple[bool, str]],
                          target: EslTarget) -> None:
        """Own thread, own ESL connection: send ``bgapi originate`` and wait for its result."""
        import gevent.event  # this thread's hub; kept out of module import for the API process

        try:
            esl = self._connect(target)
        except EslError as exc:
            started.put((False, f"ESL: {exc}"))
            return
        results: dict[str, str] = {}
        arrived = gevent.event.Event()

        def on_job(event: Any) -> None:  # registered before bgapi: a fast failure may race it
            results[event.get("Job-UUID")] = event.body_text()
            arrived.set()

        result: str | None = None
        try:
            esl.on("BACKGROUND_JOB", on_job)
            try:
                esl.subscribe("BACKGROUND_JOB", timeout=self.timeout)
                job = esl.bgapi(command, timeout=self.timeout)
            except EslError as exc:
                started.put((False, f"originate refused: {exc}"))
                return
            started.put((True, job))
            deadline = self.originate_timeout_s + 15.0
            while job not in results and not esl.closed and deadline > 0:
                arrived.clear()
                arrived.wait(1.0)
                deadline -= 1.0
            result = results.get(job)
        finally:
            esl.close()
        if result is None:
            # Unknown outcome: leave the leg to the controller's reconciliation, which ends it
            # once FreeSWITCH no longer lists the channel.
            log.warning(json.dumps({"event": "originate_result_unknown", "call_uuid": call_uuid},
                                   separators=(",", ":")))
            return
        if result.startswith("+OK"):
            return
        words = result.removeprefix("-ERR").split()
        cause = words[0] if words and _TOKEN.match(words[0]) else "ORIGINATE_FAILED"
        ended = end_leg(self.store, call_uuid, hangup_cause=cause)
        log.info(json.dumps({"event": "originate_failed", "call_uuid": call_uuid, "cause": cause,
                             "leg_released": ended is not None}, separators=(",", ":")))
