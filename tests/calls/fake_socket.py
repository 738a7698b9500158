"""An in-process stand-in for the outbound ESL socket, behaving as the captured FreeSWITCH does.

Events are real ``controller.esl.protocol.Event`` objects, delivered to the handlers the call
logic registered, in FreeSWITCH's observed order (fixtures README §1, §3, §9, §10).
"""

from __future__ import annotations

import json
import threading
import uuid as uuidlib
from collections.abc import Callable
from typing import Any

from controller.esl.connection import EslCommandError
from controller.esl.protocol import Event

RESPOND_CAUSE = {503: "NORMAL_TEMPORARY_FAILURE", 404: "UNALLOCATED_NUMBER", 410: "NUMBER_CHANGED",
                 403: "CALL_REJECTED", 486: "USER_BUSY", 488: "INCOMPATIBLE_DESTINATION",
                 400: "NORMAL_TEMPORARY_FAILURE"}


class FakeCallSocket:
    def __init__(self, data: dict[str, str], *, offer_codecs: tuple[str, ...] = ("PCMU", "PCMA"),
                 offer_crypto: bool = False, bridge_up: bool = True) -> None:
        self.data = data
        self.uuid = data["Unique-ID"]
        self.offer_codecs = offer_codecs
        self.offer_crypto = offer_crypto
        self.bridge_up = bridge_up
        self.handlers: dict[str, list[Callable[[Any], None]]] = {}
        self.commands: list[str] = []  # "execute app arg" / "api cmd" / "myevents" … in order
        self.variables: dict[str, str] = {}
        self.playing: str | None = None
        self.stream_count = 0
        self._closed = False
        self.hung_up = False
        self.lock = threading.Lock()

    # -- CallSocket ---------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    def on(self, key: str, handler: Callable[[Any], None]) -> None:
        self.handlers.setdefault(key, []).append(handler)

    def myevents(self, timeout: float = 10.0) -> None:
        self.commands.append("myevents")

    def subscribe_audio_stream(self, timeout: float = 10.0) -> None:
        self.commands.append("event plain CUSTOM mod_audio_stream::…")

    def linger(self, seconds: int | None = None, timeout: float = 10.0) -> None:
        self.commands.append("linger")

    def execute(self, app: str, arg: str | None = None, *, event_uuid: str | None = None,
                lock: bool = True, timeout: float = 10.0) -> str:
        event_uuid = event_uuid or str(uuidlib.uuid4())
        self.commands.append(f"execute {app} {arg or ''}".rstrip())
        if self.hung_up:  # mod_event_socket cannot queue a private event on a channel going down
            raise EslCommandError(f"sendmsg {app}", "-ERR memory error")
        self.emit("CHANNEL_EXECUTE", Application=app, **{"Application-UUID": event_uuid})
        if app == "set" and arg:
            name, _, value = arg.partition("=")
            self.variables[name] = value
        elif app == "respond":
            self.hangup(RESPOND_CAUSE.get(int(arg or "0"), "NORMAL_CLEARING"))
        elif app == "answer":
            if not self._offer_acceptable():
                self.hangup("INCOMPATIBLE_DESTINATION")  # HANGUP before answer's EXECUTE_COMPLETE
            else:
                self.emit("CHANNEL_ANSWER")
        elif app == "hangup":
            self.hangup(arg or "NORMAL_CLEARING")
        self.emit("CHANNEL_EXECUTE_COMPLETE", Application=app,
                  **{"Application-UUID": event_uuid, "Application-Response": "_none_"})
        return event_uuid

    def api(self, cmd: str, timeout: float = 10.0, *, check: bool = False) -> str:
        self.commands.append(f"api {cmd}")
        parts = cmd.split(" ")
        if parts[0] == "uuid_audio_stream" and parts[2] == "start":
            self.stream_count += 1
            if self.bridge_up:
                self.emit_custom("mod_audio_stream::connect", {"status": "connected"})
            else:
                refused = {"code": 6, "error": "Connection refused (system error 111)"}
                self.emit_custom("mod_audio_stream::error", {"status": "error", "message": refused})
            return "+OK Success\n"
        if parts[0] == "uuid_audio_stream":
            return "+OK Success\n"
        if parts[0] == "uuid_setvar_multi":  # mod_commands: `<uuid> a=1;b=2` → +OK
            if parts[1] != self.uuid:
                return "-ERR No such channel!\n"
            for item in " ".join(parts[2:]).split(";"):
                name, _, value = item.partition("=")
                self.variables[name] = value
            return "+OK\n"
        if parts[0] == "uuid_broadcast":
            if parts[1] != self.uuid:
                return "-ERR invalid uuid\n"
            assert self.playing is None, f"overlap: {parts[2]} while {self.playing} plays"
            self.playing = parts[2]
            self.emit("CHANNEL_EXECUTE", Application="playback", **{"Application-Data": parts[2]})
            if parts[2].startswith("silence_stream://"):  # the CF_BREAK sink ends by itself
                self.finish_playback()
            return "+OK Message sent\n"
        if parts[0] == "uuid_break":
            if self.playing:
                self.finish_playback("FILE PLAYED")
            return ""  # break_function prints nothing on success
        return "-ERR unknown\n"

    # -- test controls --------------------------------------------------------------------------------
    def _offer_acceptable(self) -> bool:
        if self.variables.get("rtp_secure_media") == "mandatory" and not self.offer_crypto:
            return False
        wanted = self.variables.get("absolute_codec_string")
        return not wanted or any(c in self.offer_codecs for c in wanted.split(","))

    def finish_playback(self, response: str = "FILE PLAYED") -> None:
        played, self.playing = self.playing, None
        self.emit("CHANNEL_EXECUTE_COMPLETE", Application="playback",
                  **{"Application-Data": played or "", "Application-Response": response})

    def hangup(self, cause: str = "NORMAL_CLEARING") -> None:
        if self.hung_up:
            return
        self.hung_up = True
        self.playing = None
        self.emit("CHANNEL_HANGUP", **{"Hangup-Cause": cause})

    def emit(self, name: str, uuid: str | None = None, body: bytes = b"", **headers: str) -> None:
        h = {"Event-Name": name, "Unique-ID": uuid or self.uuid, **headers}
        self._deliver(name, Event(headers=h, body=body))

    def emit_custom(self, subclass: str, body: object, uuid: str | None = None) -> None:
        h = {"Event-Subclass": subclass, "Event-Name": "CUSTOM", "Unique-ID": uuid or self.uuid}
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self._deliver(subclass, Event(headers=h, body=raw))

    def disconnect(self, disposition: str = "linger") -> None:
        notice = Event(headers={"Content-Type": "text/disconnect-notice", "Content-Disposition": disposition})
        for handler in self.handlers.get("DISCONNECT", []):
            handler(notice)

    def close(self) -> None:
        self._closed = True

    def _deliver(self, key: str, event: Event) -> None:
        for handler in self.handlers.get(key, []) + self.handlers.get("*", []):
            handler(event)
