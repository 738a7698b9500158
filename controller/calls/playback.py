"""Playing a leg's translated speech: a FIFO of the files mod_audio_stream announces for it.

mod_audio_stream writes each ``streamAudio`` message of the bridge to a temp file and fires
``CUSTOM mod_audio_stream::play`` for that channel; it does not play it. We play one file at a
time with ``uuid_broadcast <uuid> <file> aleg`` and start the next on the previous one's
``CHANNEL_EXECUTE_COMPLETE`` (Application ``playback``, Application-Data = the path): no gap
beyond one event round trip, no overlap. Barge-in drops the queue and ``uuid_break``s what is
playing — but only once its ``CHANNEL_EXECUTE`` is in: ``uuid_broadcast`` queues a private event
that the channel picks up a frame later, and ``uuid_break <uuid> all`` flushes private events
(mod_commands.c break_function), so breaking a broadcast not yet started would drop it without
any CHANNEL_EXECUTE_COMPLETE and stall the queue for the rest of the call.

The temp files are FreeSWITCH's (in its temp_dir, on its host, which need not be ours):
the controller never deletes them; mod_audio_stream owns their lifetime.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable

log = logging.getLogger("kallglot.calls.playback")

ApiCall = Callable[[str], str]

# Played right after a broken file. A broadcast stopped by uuid_break leaves CF_BREAK set on the
# parked channel (switch_ivr_parse_event sets it again after CF_STOP_BROADCAST and nothing in
# the park loop clears it), and the next playback would end at once, losing the first
# translation after every barge-in. 20 ms of silence takes that break instead.
CF_BREAK_SINK = "silence_stream://20"

# Files queued beyond this are dropped (oldest first): the bridge sends one file per sentence,
# so a backlog this deep means the listener would hear speech minutes late.
MAX_QUEUED_FILES = 32


def play_file_from_event(body: bytes) -> str | None:
    """The ``file`` of a ``mod_audio_stream::play`` body, or None when unusable.

    The path goes into an API command line, so whitespace or control characters are refused.
    """
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    path = doc.get("file") if isinstance(doc, dict) else None
    if not isinstance(path, str) or not path or any(c.isspace() or ord(c) < 32 for c in path):
        return None
    return path


def is_barge_in(body: bytes) -> bool:
    """A ``mod_audio_stream::json`` body carrying ``{"type":"kallglot.barge_in"}``."""
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get("type") == "kallglot.barge_in"


class LegPlayback:
    """Per-leg playback queue. Not thread-safe: drive it from the call's event loop only."""

    def __init__(self, call_uuid: str, api: ApiCall, *, max_queued: int = MAX_QUEUED_FILES) -> None:
        self.call_uuid = call_uuid
        self._api = api
        self._max_queued = max_queued
        self._queue: deque[str] = deque()
        self.playing: str | None = None
        self.played: list[str] = []  # files started, in order (for logs and tests)
        self.dropped = 0
        self._breaking = False
        self._started = False  # CHANNEL_EXECUTE seen for `playing`
        self._break_on_start = False
        self._break_sent = False

    @property
    def queued(self) -> tuple[str, ...]:
        return tuple(self._queue)

    def enqueue(self, path: str) -> None:
        if len(self._queue) >= self._max_queued:
            self._queue.popleft()
            self.dropped += 1
            log.warning("call %s: playback backlog full, dropped the oldest file", self.call_uuid)
        self._queue.append(path)
        if self.playing is None:
            self._start_next()

    def on_execute(self, application: str, data: str) -> None:
        """Feed every CHANNEL_EXECUTE of this channel; notes that our broadcast has started."""
        if application != "playback" or self.playing is None or self._started:
            return
        if data and data.split(" ", 1)[0] != self.playing:
            return
        self._started = True
        if self._break_on_start:
            self._break_on_start = False
            self._break()

    def on_execute_complete(self, application: str, data: str) -> None:
        """Feed every CHANNEL_EXECUTE_COMPLETE of this channel; reacts to our playback's."""
        if application != "playback" or self.playing is None:
            return
        if data and data.split(" ", 1)[0] != self.playing:
            return
        broken = self._break_sent
        self.playing = None
        self._breaking = False
        self._break_sent = False
        self._started = False
        self._break_on_start = False
        if broken:
            self._queue.appendleft(CF_BREAK_SINK)
        self._start_next()

    def barge_in(self) -> None:
        """Drop what is queued and stop what is playing (the listener started talking)."""
        self.dropped += len(self._queue)
        self._queue.clear()
        if self.playing is not None and not self._breaking:
            self._breaking = True
            # `playing` stays set until its EXECUTE_COMPLETE arrives, so a file announced in
            # between waits for it instead of overlapping the tail of the broken one.
            if self._started:
                self._break()
            else:
                self._break_on_start = True  # see the module docstring

    def _break(self) -> None:
        self._break_sent = True
        reply = self._api(f"uuid_break {self.call_uuid} all")
        # Success prints nothing (break_function); failure is `-ERR No Such Channel!`.
        if reply.startswith("-ERR"):
            log.warning("call %s: uuid_break failed: %s", self.call_uuid, reply.strip())

    def stop(self) -> None:
        """The call is over: forget everything (nothing more is sent)."""
        self._queue.clear()
        self.playing = None
        self._started = self._break_on_start = self._break_sent = False

    def forget_queued(self) -> None:
        """The stream was stopped: mod_audio_stream deleted its files, so queued paths are gone."""
        self.dropped += len(self._queue)
        self._queue.clear()

    def _start_next(self) -> None:
        while self._queue and self.playing is None:
            path = self._queue.popleft()
            reply = self._api(f"uuid_broadcast {self.call_uuid} {path} aleg")
            if reply.startswith("+OK"):
                self.playing = path
                self._started = False
                if path != CF_BREAK_SINK:
                    self.played.append(path)
            else:
                log.warning("call %s: uuid_broadcast of %s failed: %s", self.call_uuid, path, reply.strip())
