"""One call on its outbound ESL socket, from ``connect`` to ``exit``.

subscribe (``myevents`` + mod_audio_stream's CUSTOM events) → ``linger`` → admit → either
``respond <code>`` (with ``sip_rh_`` headers) or set media policy → ``answer`` → start the
stream to the bridge → play what the bridge sends back → on hangup end the leg (frees its slot,
ends the session with its last leg). The transport is any object with the methods of
:class:`CallSocket` (``controller.esl.outbound.OutboundCall`` in production); its events are
funnelled into one queue and handled here, one at a time, so API commands issued while handling
an event never wait on the reader that delivers their own reply.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from controller import metrics
from controller.bridges import BridgeRouter
from controller.calls.admission import Admitted, Rejected, admit
from controller.calls.adoption import has_audio_stream, is_adopted, resume_leg
from controller.calls.channel import ChannelDataError, ChannelInfo
from controller.calls.legs import end_leg, mark_leg
from controller.calls.playback import LegPlayback, is_barge_in, play_file_from_event
from controller.calls.quality import MEDIA_TIMEOUT_CAUSE, LegQuality, quality_from_event
from controller.calls.rejections import emit_call_rejected
from controller.esl.connection import EslCommandError
from controller.settings import Settings, SettingsError
from controller.store import Store

log = logging.getLogger("kallglot.calls.handler")

STREAM_CONNECT = "mod_audio_stream::connect"
STREAM_PLAY = "mod_audio_stream::play"
STREAM_ERROR = "mod_audio_stream::error"
STREAM_DISCONNECT = "mod_audio_stream::disconnect"
STREAM_JSON = "mod_audio_stream::json"
# Bridge close codes (media_bridge/wire.py CloseCode) that a new attempt cannot change: bad
# metadata, unknown or ended session, and a newer stream of the same leg that replaced this one.
PERMANENT_CLOSE_CODES = frozenset({4001, 4400, 4404, 4410})
# How long to wait for the CHANNEL_HANGUP of a call whose sendmsg was refused (it is queued
# behind the refusal on the same socket, so it is normally already there).
GONE_HANGUP_WAIT_S = 2.0
DISCONNECT = "DISCONNECT"  # the ESL layer's handler key for text/disconnect-notice
DISCONNECT_NOTICE = "text/disconnect-notice"


class _Wake:
    """Put on a call's event queue to wake its loop (hand-over); matches no real event."""

    name = key = uuid = "KALLGLOT_WAKE"
    body = b""

    def get(self, name: str, default: str = "") -> str:
        return default


_WAKE: CallEvent = _Wake()


class CallEvent(Protocol):
    """What the handler reads of an ESL event (``controller.esl.protocol.Event``)."""

    @property
    def name(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def uuid(self) -> str: ...
    @property
    def body(self) -> bytes: ...
    def get(self, name: str, default: str = "") -> str: ...


class CallSocket(Protocol):
    """The per-call outbound socket (``controller.esl.outbound.OutboundCall``)."""

    data: dict[str, str]

    @property
    def closed(self) -> bool: ...
    def on(self, key: str, handler: Callable[[Any], None]) -> None: ...
    def myevents(self, timeout: float = ...) -> None: ...
    def subscribe_audio_stream(self, timeout: float = ...) -> None: ...
    def linger(self, seconds: int | None = None, timeout: float = ...) -> None: ...
    def execute(self, app: str, arg: str | None = None, *, event_uuid: str | None = None,
                lock: bool = True, timeout: float = ...) -> str: ...
    def api(self, cmd: str, timeout: float = ..., *, check: bool = False) -> str: ...


def _env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise SettingsError(f"{name} must not be negative, got {raw!r}")
    return value


@dataclass(frozen=True)
class CallConfig:
    bridge_url: str
    sample_rate: int = 16000
    answer_timeout_s: float = 15.0
    # How long to wait for FreeSWITCH's hangup after `respond` before letting the socket go.
    reject_timeout_s: float = 5.0
    # Re-starts of a stream the bridge refused or closed, with exponential backoff.
    stream_retries: int = 3
    stream_retry_base_s: float = 1.0
    stream_retry_max_s: float = 10.0
    # STREAM_BUFFER_SIZE in ms (multiple of 20); 0 leaves mod_audio_stream's 20 ms frames.
    stream_buffer_ms: int = 0
    # FreeSWITCH hangs a call up (MEDIA_TIMEOUT) after this long without RTP from the party;
    # 0 disables. Set on the channel before answer, when its RTP session starts.
    media_timeout_s: float = 60.0
    # How long to wait after CHANNEL_HANGUP for CHANNEL_HANGUP_COMPLETE (the RTP statistics).
    hangup_complete_wait_s: float = 2.0
    # The node (controller/cluster) whose FreeSWITCH carries this controller's legs.
    node_id: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, env: Mapping[str, str] | None = None) -> CallConfig:
        env = os.environ if env is None else env
        buffer_ms = int(_env_float(env, "KALLGLOT_STREAM_BUFFER_MS", 0))
        if buffer_ms % 20:
            raise SettingsError(f"KALLGLOT_STREAM_BUFFER_MS must be a multiple of 20, got {buffer_ms}")
        return cls(
            bridge_url=settings.bridge_url.rstrip("/"),
            answer_timeout_s=_env_float(env, "KALLGLOT_ANSWER_TIMEOUT_S", 15.0),
            stream_retries=int(_env_float(env, "KALLGLOT_STREAM_RETRIES", 3)),
            stream_retry_base_s=_env_float(env, "KALLGLOT_STREAM_RETRY_BASE_S", 1.0),
            stream_buffer_ms=buffer_ms,
            media_timeout_s=_env_float(env, "KALLGLOT_MEDIA_TIMEOUT_S", 60.0),
            node_id=settings.node_name,
        )


# JSON's two-character escapes as `\uXXXX`: FreeSWITCH's argument cleanup (switch_utils.c
# cleanup_separated_string) turns `\"` into `"`, `\\` into `\`, `\n`/`\t`/`\r` into control
# characters, which would break the JSON; `\u` it leaves alone.
_JSON_SHORT_ESCAPES = {'"': "\\u0022", "\\": "\\u005c", "/": "/", "b": "\\u0008", "f": "\\u000c",
                       "n": "\\u000a", "r": "\\u000d", "t": "\\u0009"}
_JSON_ESCAPE = re.compile(r"\\(.)")


def stream_metadata_arg(metadata: Mapping[str, object]) -> str:
    """The metadata as the last argument of ``uuid_audio_stream … start``, arriving byte-exact.

    mod_audio_stream takes it as the rest of the line after ``switch_separate_string`` (argv[6]),
    whose cleanup strips single quotes and backslash escapes and trims spaces: compact ASCII JSON
    with every `"`, backslash, control character, `'` and space inside strings as a 6-character
    ``\\u`` escape.
    """
    text = json.dumps(metadata, separators=(",", ":"), ensure_ascii=True)
    text = _JSON_ESCAPE.sub(lambda m: _JSON_SHORT_ESCAPES.get(m.group(1), m.group(0)), text)
    # Outside strings compact JSON has neither; inside them the escapes are the same characters.
    return text.replace("'", "\\u0027").replace(" ", "\\u0020")


class CallSession:
    """Drives one call; ``run()`` returns when the call is over (the ESL layer then sends ``exit``)."""

    def __init__(self, sock: CallSocket, store: Store, config: CallConfig, *,
                 clock: Callable[[], float] = time.monotonic, bridges: BridgeRouter | None = None) -> None:
        self.sock = sock
        self.store = store
        self.config = config
        # Bridge pools per region (KALLGLOT_BRIDGE_POOLS); None: config.bridge_url for every call.
        self.bridges = bridges
        self.bridge_url: str | None = None if bridges is not None else config.bridge_url
        self._reroute = False  # the next stream start asks the pools again (a re-start)
        self._clock = clock
        # The call reached us (its outbound socket is connected): call setup is timed from here.
        self._arrived = clock()
        self._events: queue.Queue[CallEvent] = queue.Queue()
        # Events read while waiting for something else (e.g. an early ::play), handled next.
        self._backlog: deque[CallEvent] = deque()
        self.channel: ChannelInfo | None = None
        self.admission: Admitted | Rejected | None = None
        self.playback: LegPlayback | None = None
        self.hangup_cause: str | None = None
        self.stream_attempts = 0
        self._retry_at: float | None = None
        self._cause_from_notice = False
        # The call goes on without us: the controller hands it over (SIGTERM), or the socket
        # was lost without a hangup. Its leg stays open; the next controller adopts the call.
        self._handing_over = False
        self.detached = False

    # -- entry point -----------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self.channel = ChannelInfo.from_headers(self.sock.data)
        except ChannelDataError as exc:
            log.error("call refused: %s", exc)
            return
        mode, control = self.sock.data.get("Socket-Mode"), self.sock.data.get("Control")
        if (mode and mode != "async") or (control and control != "full"):
            # Without `full` FreeSWITCH refuses `event` and `api` on this socket; without `async`
            # commands block the channel. Returning lets the socket app end (the call is cleared).
            log.error("call %s refused: the socket application must be `socket <addr> async full` "
                      "(Socket-Mode %s, Control %s)", self.channel.call_uuid, mode, control)
            return
        self.sock.on("*", self._events.put)
        self.sock.on(DISCONNECT, self._events.put)
        self.sock.myevents()
        self.sock.subscribe_audio_stream()
        self.sock.linger()
        if is_adopted(self.sock.data):
            self._resume()
            return
        try:
            self.admission = admit(self.store, self.channel, node_id=self.config.node_id)
        except Exception:
            # The store is unusable (e.g. locked past its busy timeout): a temporary failure.
            log.exception("call %s: admission failed", self.channel.call_uuid)
            self.admission = Rejected(self.channel.call_uuid, 503, "admission error")
        if isinstance(self.admission, Admitted) and self.bridges is not None:
            self.admission = self._choose_bridge(self.admission)
        if isinstance(self.admission, Rejected):
            metrics.record_call_refused(self.admission.org_id, self.admission.sip_code)
            self._reject(self.admission)
            return
        metrics.record_call_admitted(self.admission.org_id)
        try:
            if self._answer(self.admission):
                metrics.observe_call_setup(self._clock() - self._arrived, self.channel.direction)
                self._start_stream()
                self._serve()
        finally:
            self._finish(self.admission)

    # -- bridge pools --------------------------------------------------------------------------------
    def _route(self, admitted: Admitted, previous: str | None = None) -> tuple[str, str | None]:
        """(region, bridge URL or None) for this leg, from the session's stored bridge or a choice."""
        assert self.bridges is not None
        try:
            route = self.bridges.route(admitted.session_id, admitted.leg_id)
        except Exception:
            log.exception("call %s: bridge choice failed", admitted.call_uuid)
            return "", None
        if route.url is not None and route.url != previous:
            log.info(json.dumps({"event": "bridge_chosen", "call_uuid": admitted.call_uuid,
                                 "session_id": admitted.session_id, "leg_id": admitted.leg_id,
                                 "region": route.region, "bridge": route.url}, separators=(",", ":")))
        return route.region, route.url

    def _choose_bridge(self, admitted: Admitted) -> Admitted | Rejected:
        """Before answer: the session's bridge, or — none healthy in its region — give the slot
        back and refuse the call 503 (a caller hearing silence would be worse)."""
        region, self.bridge_url = self._route(admitted)
        if self.bridge_url is not None:
            return admitted
        end_leg(self.store, admitted.call_uuid, hangup_cause="NORMAL_TEMPORARY_FAILURE", sip_code=503)
        assert self.bridges is not None
        log.warning(json.dumps({"event": "call_refused_no_bridge", "call_uuid": admitted.call_uuid,
                                "session_id": admitted.session_id, "leg_id": admitted.leg_id,
                                "org_id": admitted.org_id, "region": region, "sip_code": 503,
                                "bridges": self.bridges.pool.describe(region)}, separators=(",", ":")))
        return Rejected(admitted.call_uuid, 503, f"no healthy bridge in region {region or 'unknown'}",
                        admitted.org_id, admitted.session_id)

    # -- adoption and hand-over -------------------------------------------------------------------
    def _resume(self) -> None:
        """A call an earlier controller admitted, sent back to us (controller/calls/adoption.py):
        carry on with its leg; restart its stream only if it is gone."""
        assert self.channel is not None
        leg_id = self.sock.data.get("variable_kallglot_leg_id")
        admitted = resume_leg(self.store, self.channel, leg_id)
        if admitted is None:
            log.info(json.dumps({"event": "adopted_call_ended", "call_uuid": self.channel.call_uuid,
                                 "leg_id": leg_id, "reason": "its leg or session is no longer open"},
                                separators=(",", ":")))
            try:
                self.sock.execute("hangup", "NORMAL_CLEARING")
            except EslCommandError as exc:
                self._gone_before_media(exc)
                return
            self._wait_for(lambda ev: self._is_my_hangup(ev), GONE_HANGUP_WAIT_S)
            return
        self.admission = admitted
        answered = self.sock.data.get("Answer-State") == "answered"
        log.info(json.dumps({"event": "call_adopted", "call_uuid": admitted.call_uuid,
                             "leg_id": admitted.leg_id, "session_id": admitted.session_id,
                             "answered": answered}, separators=(",", ":")))
        try:
            if answered:
                self.playback = LegPlayback(admitted.call_uuid, self._api)
                if not has_audio_stream(self._api(f"uuid_buglist {admitted.call_uuid}")):
                    self._start_stream()
                self._serve()
            elif self._answer(admitted):
                self._start_stream()
                self._serve()
        finally:
            self._finish(admitted)

    def hand_over(self) -> None:
        """Let go of the call without ending it (graceful stop): ``run`` returns, the ESL layer
        sends ``exit``, and FreeSWITCH parks the call until the next controller adopts it."""
        self._handing_over = True
        self._events.put(_WAKE)

    # -- reject ------------------------------------------------------------------------------------
    def _reject(self, rejected: Rejected) -> None:
        try:
            for name, value in rejected.response_headers:
                self.sock.execute("set", f"sip_rh_{name}={value}")
            self.sock.execute("respond", str(rejected.sip_code))
        except EslCommandError as exc:
            self._gone_before_media(exc)
            return
        # The caller has its answer; now tell the organization's webhooks (never before).
        emit_call_rejected(self.store, self.channel, rejected)
        # FreeSWITCH sends the response and hangs up by itself; wait for it so `exit` comes after.
        self._wait_for(lambda ev: self._is_my_hangup(ev), self.config.reject_timeout_s)

    def _gone_before_media(self, exc: EslCommandError) -> None:
        """A sendmsg was refused: the caller hung up (CANCEL) or the API ended the session with
        uuid_kill while we admitted the call. Take the cause from the CHANNEL_HANGUP on its way."""
        assert self.channel is not None
        log.info("call %s: gone before answer (%s)", self.channel.call_uuid, exc)
        self._wait_for(lambda ev: self._is_my_hangup(ev), GONE_HANGUP_WAIT_S)

    # -- answer ------------------------------------------------------------------------------------
    def _answer(self, admitted: Admitted) -> bool:
        """Media policy, then answer; False when the call is gone (e.g. FreeSWITCH sent 488)."""
        try:
            if admitted.require_srtp:
                self.sock.execute("set", "rtp_secure_media=mandatory")
            if admitted.codec_string:
                self.sock.execute("set", f"absolute_codec_string={admitted.codec_string}")
            if self.config.stream_buffer_ms:
                self.sock.execute("set", f"STREAM_BUFFER_SIZE={self.config.stream_buffer_ms}")
            self._label_channel(admitted)
            answer_uuid = self.sock.execute("answer")
        except EslCommandError as exc:
            self._gone_before_media(exc)
            return False
        event = self._wait_for(
            lambda ev: self._is_my_hangup(ev) or (
                ev.name == "CHANNEL_EXECUTE_COMPLETE" and ev.get("Application-UUID") == answer_uuid),
            self.config.answer_timeout_s,
        )
        if event is None or self.hangup_cause is not None:
            return False
        mark_leg(self.store, admitted.leg_id, "answered")
        self.playback = LegPlayback(admitted.call_uuid, self._api)
        return True

    def _label_channel(self, admitted: Admitted) -> None:
        """Who the call is, on the channel itself: if this socket goes away the dialplan parks
        the call (kallglot_after_socket needs kallglot_leg_id) and the next controller adopts it
        by these. One API call, run at once: three ``set`` applications would each wait their
        turn in the channel's queue (~20 ms apiece) before the answer."""
        labels = (f"kallglot_session_id={admitted.session_id};kallglot_leg_id={admitted.leg_id};"
                  f"kallglot_role={admitted.role}")
        if self.config.media_timeout_s > 0:
            labels += f";media_timeout={int(self.config.media_timeout_s * 1000)}"
        reply = self._api(f"uuid_setvar_multi {admitted.call_uuid} {labels}")
        if not reply.startswith("+OK"):
            log.warning("call %s: cannot label the channel (%s): it would not survive a controller loss",
                        admitted.call_uuid, reply.strip()[:120])

    # -- stream ------------------------------------------------------------------------------------
    def _stream_url(self, admitted: Admitted) -> str:
        return f"{self.bridge_url}/v1/media/{admitted.session_id}/{admitted.leg_id}"

    def _start_stream(self) -> None:
        admitted = self.admission
        assert isinstance(admitted, Admitted)
        self.stream_attempts += 1
        if self.bridges is not None and (self.bridge_url is None or self._reroute):
            # A re-start or an adopted call: the session's bridge may have moved or died.
            self._reroute = False
            region, url = self._route(admitted, previous=self.bridge_url)
            self.bridge_url = url or self.bridge_url
            if url is None:
                self._stream_failed(f"no healthy bridge in region {region or 'unknown'}", kind="no_bridge")
                return
        rate = "16k" if self.config.sample_rate == 16000 else "8k"
        meta = stream_metadata_arg(admitted.stream_metadata(self.config.sample_rate))
        reply = self._api(f"uuid_audio_stream {admitted.call_uuid} start {self._stream_url(admitted)} "
                          f"mono {rate} {meta}")
        # `+OK Success` comes even when the websocket will be refused: the leg counts as
        # streaming on ::connect only.
        if not reply.startswith("+OK"):
            self._stream_failed(f"start refused: {reply.strip()}", kind="start_refused")

    def _stream_failed(self, why: str, *, kind: str, permanent: bool = False) -> None:
        admitted = self.admission
        assert isinstance(admitted, Admitted)
        metrics.record_stream_failure(kind)
        retries_done = self.stream_attempts - 1
        record = {"event": "stream_failed", "call_uuid": admitted.call_uuid, "leg_id": admitted.leg_id,
                  "session_id": admitted.session_id, "attempt": self.stream_attempts, "reason": why}
        if permanent or retries_done >= self.config.stream_retries:
            record["retrying"] = False
            log.warning(json.dumps(record, separators=(",", ":")))
            self._retry_at = None
            return
        delay = min(self.config.stream_retry_base_s * (2 ** retries_done), self.config.stream_retry_max_s)
        record.update(retrying=True, retry_in_s=delay)
        log.warning(json.dumps(record, separators=(",", ":")))
        self._retry_at = self._clock() + delay

    def _retry_stream(self) -> None:
        admitted = self.admission
        assert isinstance(admitted, Admitted)
        self._retry_at = None
        metrics.record_stream_retry()
        # After a server close mod_audio_stream still holds the old stream: drop it first.
        self._api(f"uuid_audio_stream {admitted.call_uuid} stop")
        # `stop` deletes that stream's ::play files, and the new stream numbers its files from
        # `_0` again (audio_streamer_glue.cpp): queued paths are gone or would name new audio.
        if self.playback is not None:
            self.playback.forget_queued()
        self._reroute = True
        self._start_stream()

    # -- the answered call ---------------------------------------------------------------------------
    def _serve(self) -> None:
        while self.hangup_cause is None and not self._handing_over:
            timeout = 1.0
            if self._retry_at is not None:
                timeout = max(0.0, min(timeout, self._retry_at - self._clock()))
            event = self._next_event(timeout)
            if event is None:
                if self._retry_at is not None and self._clock() >= self._retry_at:
                    self._retry_stream()
                elif self.sock.closed and self._events.empty():
                    # Lost without a hangup: the call parks in FreeSWITCH (dialplan) and is
                    # adopted again, or reconciliation ends the leg if the channel is gone.
                    self.detached = True
                    return
                continue
            self._handle(event)

    def _next_event(self, timeout: float) -> CallEvent | None:
        if self._backlog:
            return self._backlog.popleft()
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            return None

    def _handle(self, event: CallEvent) -> None:
        if event is _WAKE or self._is_my_hangup(event):
            return
        admitted = self.admission
        assert isinstance(admitted, Admitted) and self.playback is not None
        if event.uuid and event.uuid != admitted.call_uuid:
            return  # never act on another channel's events
        key = event.key
        if key == "CHANNEL_EXECUTE":
            self.playback.on_execute(event.get("Application"), event.get("Application-Data"))
        elif key == "CHANNEL_EXECUTE_COMPLETE":
            self.playback.on_execute_complete(event.get("Application"), event.get("Application-Data"))
        elif key == STREAM_PLAY:
            path = play_file_from_event(event.body)
            if path is None:
                log.warning("call %s: unusable ::play body %r", admitted.call_uuid, event.body[:120])
            else:
                self.playback.enqueue(path)
        elif key == STREAM_JSON:
            if is_barge_in(event.body):
                self.playback.barge_in()
        elif key == STREAM_ERROR:
            mark_leg(self.store, admitted.leg_id, "answered")
            self._stream_failed(f"bridge refused: {event.body.decode(errors='replace')[:200]}",
                                kind="bridge_refused")
        elif key == STREAM_DISCONNECT:
            mark_leg(self.store, admitted.leg_id, "answered")
            self._stream_failed(f"bridge closed: {event.body.decode(errors='replace')[:200]}",
                                kind="bridge_closed",
                                permanent=disconnect_close_code(event.body) in PERMANENT_CLOSE_CODES)
        elif key == STREAM_CONNECT:
            mark_leg(self.store, admitted.leg_id, "streaming")
            log.info(json.dumps({"event": "stream_connected", "call_uuid": admitted.call_uuid,
                                 "leg_id": admitted.leg_id, "attempt": self.stream_attempts},
                                separators=(",", ":")))

    # -- hangup ------------------------------------------------------------------------------------
    def _is_my_hangup(self, event: CallEvent) -> bool:
        """Notes the hangup cause from CHANNEL_HANGUP or a disconnect notice."""
        assert self.channel is not None
        if event.key == "CHANNEL_HANGUP" and event.uuid in ("", self.channel.call_uuid):
            self.hangup_cause = event.get("Hangup-Cause") or "NORMAL_CLEARING"
            return True
        if event.get("Content-Type") == DISCONNECT_NOTICE:
            # The linger notice follows the hangup; without a CHANNEL_HANGUP first, the call is
            # gone and its cause may still be on the way (_finish waits briefly for it).
            if self.hangup_cause is None:
                self.hangup_cause = "NORMAL_CLEARING"
                self._cause_from_notice = True
            return True
        return False

    def _wait_for(self, match: Callable[[CallEvent], bool], timeout: float) -> CallEvent | None:
        """Read events until ``match``; the others are kept, in order, for the main loop."""
        deadline = self._clock() + timeout
        held: list[CallEvent] = []
        try:
            while True:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    return None
                try:
                    event = self._events.get(timeout=min(remaining, 1.0))
                except queue.Empty:
                    if self.sock.closed and self._events.empty():
                        # Lost without a hangup, as in _serve: the leg stays open for adoption.
                        self.detached = True
                        return None
                    continue
                if match(event):
                    return event
                held.append(event)
        finally:
            self._backlog.extend(held)

    def _finish(self, admitted: Admitted) -> None:
        if self.playback is not None:
            self.playback.stop()
        if (self._handing_over or self.detached) and self.hangup_cause is None:
            log.info(json.dumps({"event": "call_handed_over" if self._handing_over else "call_detached",
                                 "call_uuid": admitted.call_uuid, "leg_id": admitted.leg_id,
                                 "session_id": admitted.session_id}, separators=(",", ":")))
            return
        if self._cause_from_notice:
            self._cause_from_notice = False
            cause = self.hangup_cause
            self._wait_for(lambda ev: ev.key == "CHANNEL_HANGUP" and self._is_my_hangup(ev), 0.5)
            self.hangup_cause = self.hangup_cause or cause
        if self.hangup_cause is None:
            # We are giving up on a live call (answer timed out): hang it up rather than leak it.
            self.hangup_cause = "NORMAL_TEMPORARY_FAILURE"
            try:
                self.sock.execute("hangup", self.hangup_cause)
            except Exception as exc:  # the call may be gone already
                log.warning("call %s: hangup failed: %s", admitted.call_uuid, exc)
        quality = self._hangup_quality(admitted.call_uuid)
        ended = end_leg(self.store, admitted.call_uuid, hangup_cause=self.hangup_cause, quality=quality)
        record: dict[str, object] = {
            "event": "call_ended", "call_uuid": admitted.call_uuid, "leg_id": admitted.leg_id,
            "session_id": admitted.session_id, "org_id": admitted.org_id,
            "hangup_cause": self.hangup_cause,
        }
        if ended is not None:
            row = self.store.query_one("SELECT sip_code FROM call_legs WHERE id = ?", (ended.leg_id,))
            record.update(sip_code=row["sip_code"] if row else None, session_ended=ended.session_ended)
        if quality is not None:
            record.update(mos=quality.mos, packet_loss_pct=quality.packet_loss_pct,
                          jitter_max_ms=quality.jitter_max_ms, media_flowed=quality.media_flowed)
            metrics.observe_call_quality(admitted.org_id, quality.mos, quality.jitter_max_ms,
                                         quality.packet_loss_pct, quality.media_flowed)
        if self.hangup_cause == MEDIA_TIMEOUT_CAUSE:
            metrics.record_rtp_timeout(admitted.org_id)
        log.info(json.dumps(record, separators=(",", ":")))

    def _hangup_quality(self, call_uuid: str) -> LegQuality | None:
        """The leg's RTP statistics from CHANNEL_HANGUP_COMPLETE, which follows CHANNEL_HANGUP by
        a few ms (before the linger notice); None if it does not come in time."""
        deadline = self._clock() + self.config.hangup_complete_wait_s
        while True:
            if self._backlog:
                event = self._backlog.popleft()
            else:
                remaining = deadline - self._clock()
                if remaining <= 0 or (self.sock.closed and self._events.empty()):
                    return None
                try:
                    event = self._events.get(timeout=min(remaining, 0.5))
                except queue.Empty:
                    continue
            if event is _WAKE:
                continue
            if event.key == "CHANNEL_HANGUP_COMPLETE" and event.uuid in ("", call_uuid):
                return quality_from_event(event.get, self.hangup_cause)
            if event.get("Content-Type") == DISCONNECT_NOTICE:
                return None  # sent after CHANNEL_HANGUP_COMPLETE: it is not coming

    def _api(self, cmd: str) -> str:
        try:
            return self.sock.api(cmd)
        except Exception as exc:  # a timed-out or broken socket must not kill the call loop
            log.warning("call api %s failed: %s", cmd.split(" ", 1)[0], exc)
            return f"-ERR {exc}"


def handle_call(sock: CallSocket, store: Store, config: CallConfig) -> None:
    """The ESL outbound server's per-call entry point."""
    CallSession(sock, store, config).run()


def disconnect_close_code(body: bytes) -> int | None:
    """The websocket close code in a ``mod_audio_stream::disconnect`` body, if readable."""
    try:
        message = json.loads(body).get("message") or {}
        return int(message.get("code"))
    except (ValueError, TypeError, AttributeError):
        return None
