"""Outbound ESL: FreeSWITCH's dialplan ``socket <host:port> async full`` connects to us per call.

``OutboundServer(host, port, handle_call)`` accepts those connections; each one becomes an
``OutboundCall`` whose ``connect`` handshake has already run (``call.data`` holds the channel
data) before ``handle_call(call)`` runs in its own greenlet. When ``handle_call`` returns, the
socket is released with ``exit`` (a ``linger`` without seconds would otherwise hold it forever).
"""

from __future__ import annotations

import logging
import uuid as uuidlib
from collections.abc import Callable

import gevent
import gevent.event
import gevent.server
import gevent.socket

from controller.esl import protocol
from controller.esl.connection import (
    DEFAULT_TIMEOUT,
    EslCommandError,
    EslConnection,
    EslDisconnected,
    EslError,
    EslTimeout,
)
from controller.esl.protocol import Event

log = logging.getLogger(__name__)

# mod_audio_stream's CUSTOM subclasses; `myevents` does not include them.
AUDIO_STREAM_EVENTS: tuple[str, ...] = (
    "mod_audio_stream::connect",
    "mod_audio_stream::play",
    "mod_audio_stream::error",
    "mod_audio_stream::disconnect",
    "mod_audio_stream::json",
)


class OutboundCall(EslConnection):
    """One call's outbound socket. Create via ``OutboundServer``; ``data`` is the channel data."""

    def __init__(self, sock: gevent.socket.socket, peer: tuple[str, int] | None = None) -> None:
        super().__init__(sock)
        self.peer = peer
        self.data: dict[str, str] = {}
        self.hangup_event: Event | None = None
        self._hungup = gevent.event.Event()
        self._completions: dict[str, gevent.event.AsyncResult] = {}

    # -- handshake and channel data -----------------------------------------------------------------
    def handshake(self, timeout: float = DEFAULT_TIMEOUT) -> dict[str, str]:
        """Send ``connect``; the reply's headers (URL-decoded) are the channel data."""
        reply = self.command("connect", timeout=timeout)
        self.data = reply.decoded_headers()
        if not self.uuid:
            raise EslError("connect reply carries no Unique-ID (is the dialplan socket 'async full'?)")
        return self.data

    @property
    def uuid(self) -> str:
        return self.data.get("Unique-ID") or self.data.get("variable_uuid", "")

    def variable(self, name: str, default: str = "") -> str:
        """A channel variable from the connect reply (``variable_<name>``)."""
        return self.data.get(f"variable_{name}", default)

    def sip_header(self, name: str, default: str = "") -> str:
        """An ``X-`` SIP header of the INVITE (FreeSWITCH keeps them as ``sip_h_X-…``)."""
        return self.variable(f"sip_h_{name}", default)

    # -- subscriptions ----------------------------------------------------------------------------
    def myevents(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """This channel's events (not CUSTOM ones: see ``subscribe_audio_stream``)."""
        reply = self.command("myevents", timeout=timeout)
        if not reply.ok:
            raise EslCommandError("myevents", reply.reply_text)

    def subscribe_audio_stream(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.subscribe(*AUDIO_STREAM_EVENTS, timeout=timeout)

    def linger(self, seconds: int | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Keep the socket after hangup to read the last events. Without seconds FreeSWITCH never
        lets go: ``exit`` (done by the server when the call handler returns) releases it."""
        reply = self.command("linger" if seconds is None else f"linger {int(seconds)}", timeout=timeout)
        if not reply.ok:
            raise EslCommandError("linger", reply.reply_text)

    # -- applications -----------------------------------------------------------------------------
    def execute(self, app: str, arg: str | None = None, *, event_uuid: str | None = None,
                lock: bool = True, timeout: float = DEFAULT_TIMEOUT) -> str:
        """Run a dialplan application on this channel with ``sendmsg``; returns its Event-UUID.

        FreeSWITCH replies ``+OK`` once queued; the CHANNEL_EXECUTE_COMPLETE event carries the
        Event-UUID back as ``Application-UUID`` (``wait_complete``). With ``lock`` the command
        is executed before any later one.
        """
        event_uuid = event_uuid or str(uuidlib.uuid4())
        waiter = gevent.event.AsyncResult()
        self._completions[event_uuid] = waiter
        data = protocol.encode_sendmsg(app, arg, event_uuid=event_uuid, lock=lock)
        try:
            reply = self.send_raw(data, f"sendmsg {app}", timeout)
        except EslError:
            self._completions.pop(event_uuid, None)
            raise
        if not reply.ok:
            self._completions.pop(event_uuid, None)
            raise EslCommandError(f"{app}", reply.reply_text)
        return event_uuid

    def wait_complete(self, event_uuid: str, timeout: float = DEFAULT_TIMEOUT) -> Event:
        """The CHANNEL_EXECUTE_COMPLETE of an ``execute`` (requires ``myevents``)."""
        waiter = self._completions.get(event_uuid)
        if waiter is None:
            raise KeyError(f"no execute with Event-UUID {event_uuid}")
        try:
            event: Event = waiter.get(timeout=timeout)
        except gevent.Timeout:
            raise EslTimeout(f"application {event_uuid} did not complete within {timeout:g} s") from None
        finally:
            if waiter.ready():
                self._completions.pop(event_uuid, None)
        return event

    def execute_wait(self, app: str, arg: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> Event:
        """``execute`` then ``wait_complete``; ``Application-Response`` holds the app's result."""
        return self.wait_complete(self.execute(app, arg, timeout=timeout), timeout)

    def set_var(self, name: str, value: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        if "=" in name or not name:
            raise ValueError(f"bad channel variable name {name!r}")
        self.execute("set", f"{name}={value}", lock=False, timeout=timeout)

    def hangup(self, cause: str = "NORMAL_CLEARING", timeout: float = DEFAULT_TIMEOUT) -> None:
        if self.hung_up:
            return
        try:
            self.execute("hangup", cause, lock=False, timeout=timeout)
        except (EslDisconnected, EslCommandError):
            pass  # already gone

    # -- hangup detection ---------------------------------------------------------------------------
    @property
    def hung_up(self) -> bool:
        return self._hungup.is_set()

    @property
    def hangup_cause(self) -> str:
        if self.hangup_event is not None:
            return self.hangup_event.get("Hangup-Cause")
        return ""

    def wait_hangup(self, timeout: float | None = None) -> bool:
        """Block until the channel is hung up (CHANNEL_HANGUP, a disconnect notice or the socket
        closing); False on timeout."""
        return bool(self._hungup.wait(timeout))

    def _on_event(self, event: Event) -> None:
        if event.name == "CHANNEL_EXECUTE_COMPLETE":
            waiter = self._completions.get(event.get("Application-UUID"))
            if waiter is not None:
                waiter.set(event)
        elif event.name == "CHANNEL_HANGUP" and event.uuid == self.uuid:
            self.hangup_event = event
            self._hungup.set()

    def _on_frame(self, frame: protocol.Frame) -> None:
        super()._on_frame(frame)
        if frame.content_type == protocol.DISCONNECT_NOTICE:
            self._hungup.set()

    def _mark_closed(self) -> None:
        super()._mark_closed()
        self._hungup.set()
        for waiter in list(self._completions.values()):
            if not waiter.ready():
                waiter.set_exception(EslDisconnected("socket closed before the application completed"))


CallHandler = Callable[[OutboundCall], None]


class OutboundServer:
    """Accepts FreeSWITCH's outbound socket connections and runs ``handle_call`` per call."""

    def __init__(self, host: str, port: int, handle_call: CallHandler, *,
                 connect_timeout: float = DEFAULT_TIMEOUT, max_calls: int = 10000) -> None:
        self._handle_call = handle_call
        self._connect_timeout = connect_timeout
        self.calls: set[OutboundCall] = set()
        self._server = gevent.server.StreamServer((host, port), self._serve, spawn=max_calls)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.address[:2]
        return host, port

    def start(self) -> None:
        """Bind and start accepting (returns at once; port 0 picks a free port, see ``address``)."""
        self._server.start()

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop_accepting(self) -> None:
        """Close the listening socket; calls already connected go on (their handlers decide).
        FreeSWITCH's ``socket`` to this address now fails at once (connection refused)."""
        self._server.close()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting and close every live call socket (FreeSWITCH then continues those
        channels' dialplans: ours parks an admitted call for the next controller). The
        controller stops with ``stop_accepting`` and hands calls over instead."""
        self._server.stop(timeout=timeout)
        for call in list(self.calls):
            call.close()

    def _serve(self, sock: gevent.socket.socket, peer: tuple[str, int]) -> None:
        call = OutboundCall(sock, peer)
        call.start_event_handlers()
        self.calls.add(call)
        try:
            call.handshake(self._connect_timeout)
            self._handle_call(call)
        except EslError as exc:
            log.warning("call %s: %s", call.uuid or peer, exc)
        except Exception:
            log.exception("call handler failed for %s", call.uuid or peer)
        finally:
            self.calls.discard(call)
            call.exit()
