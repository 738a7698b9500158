"""A live session in the bridge: its (up to two) legs, their audio queues and speech segmenters,
and the per-session utterance queue that feeds the engine.

Flow: websocket receive loop → ``LegStream.enqueue`` (bounded, never blocks) → the leg's frame
task (VAD) → ``BridgeSession.submit`` (bounded utterance queue) → the session's engine task
(one utterance at a time, engine in a worker thread) → transcript row + streamAudio messages on
the *listener's* websocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from aiohttp import web

from controller.store import Store
from media_bridge.audio import frame_bytes, resample
from media_bridge.config import BridgeConfig
from media_bridge.engines.base import (
    EngineError,
    EngineResult,
    SpeechChunk,
    Transcript,
    Translation,
    UtteranceRequest,
)
from media_bridge.engines.runner import EngineRunner
from media_bridge.metrics import BridgeMetrics
from media_bridge.records import SessionInfo, TurnRecord, insert_turn
from media_bridge.vad import Pause, Resumed, SpeechSegmenter, SpeechStarted, Utterance
from media_bridge.wire import BARGE_IN_MESSAGE, stream_audio_message

log = logging.getLogger(__name__)

ROLES = ("customer", "agent")
AUTO = "auto"


def other_role(role: str) -> str:
    return "agent" if role == "customer" else "customer"


_END = object()


@dataclass(eq=False)
class Speculation:
    """The engine already working on an utterance as it would end at a pause; its results wait
    in ``queue`` until the end of speech confirms them (or speech resumes and they are dropped)."""

    samples: int  # the candidate's length: the confirmed utterance must be the same audio
    task: asyncio.Task[None]
    queue: asyncio.Queue[object]

    async def results(self) -> AsyncIterator[EngineResult]:
        while True:
            item = await self.queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]

    def drop(self) -> None:
        self.task.cancel()


@dataclass(eq=False)
class LegStream:
    """One connected websocket of one call leg."""

    leg_id: str
    role: str
    sample_rate: int
    ws: web.WebSocketResponse
    segmenter: SpeechSegmenter
    max_frames: int
    metrics: BridgeMetrics
    call_uuid: str | None = None
    frames: deque[tuple[bytes, float]] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # Monotonic time until which translated audio sent to this leg is (estimated to be) playing.
    playing_until: float = 0.0
    barge_epoch: int = 0
    task: asyncio.Task[None] | None = None
    speculation: Speculation | None = None

    @property
    def frame_size(self) -> int:
        return frame_bytes(self.sample_rate)

    def enqueue(self, payload: bytes, wall_time: float) -> None:
        """Split a (possibly batched) payload into 20 ms frames; drop the oldest when full."""
        size = self.frame_size
        for start in range(0, len(payload), size):
            if len(self.frames) >= self.max_frames:
                self.frames.popleft()
                self.metrics.dropped.labels("leg_frames").inc()
            self.frames.append((payload[start : start + size], wall_time))
        self.metrics.frames.inc(len(payload) // size)
        self.wake.set()


@dataclass
class QueuedUtterance:
    role: str
    utterance: Utterance
    prefetched: Speculation | None = None


class BridgeSession:
    def __init__(
        self,
        info: SessionInfo,
        store: Store,
        runner: EngineRunner,
        config: BridgeConfig,
        metrics: BridgeMetrics,
        on_empty: Callable[[BridgeSession], None],
    ) -> None:
        self.info = info
        self.store = store
        self.runner = runner
        self.config = config
        self.metrics = metrics
        self.on_empty = on_empty
        self.legs: dict[str, LegStream] = {}
        self.detected: dict[str, str] = {}
        self.utterances: deque[QueuedUtterance] = deque()
        self._utterance_ready = asyncio.Event()
        self.worker: asyncio.Task[None] | None = None
        self.retired = False
        self.audio_seen = False
        self.last_mark = 0.0

    @property
    def id(self) -> str:
        return self.info.id

    # -- legs ---------------------------------------------------------------------------------

    def attach(self, leg: LegStream) -> LegStream | None:
        """Add a leg; returns the leg it replaces (same role), which the caller closes."""
        old = self.legs.get(leg.role)
        self.legs[leg.role] = leg
        leg.task = asyncio.create_task(self._frames_loop(leg), name=f"frames-{leg.leg_id}")
        if self.worker is None:
            self.worker = asyncio.create_task(self._engine_loop(), name=f"engine-{self.id}")
        return old

    async def detach(self, leg: LegStream) -> None:
        if leg.task is not None:
            leg.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await leg.task
        if self.legs.get(leg.role) is leg:
            # Audio still queued, and an utterance in progress (hang-up mid-sentence), still count.
            events = [e for frame, t in leg.frames for e in leg.segmenter.push(frame, t)]
            leg.frames.clear()
            for event in [*events, *leg.segmenter.flush()]:
                if isinstance(event, Pause):
                    self._speculate(leg, event.candidate)
                elif isinstance(event, Resumed):
                    self._drop_speculation(leg)
                elif isinstance(event, Utterance):  # a hang-up in a pause confirms its speculation
                    self.submit(leg.role, event, self._take_speculation(leg, event))
            del self.legs[leg.role]
        self._drop_speculation(leg)
        if not self.legs:
            self.on_empty(self)

    def retire(self) -> None:
        """No legs left: finish the queued utterances (a hang-up mid-sentence still yields its
        transcript), then stop the engine task."""
        self.retired = True
        self._utterance_ready.set()

    async def close(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.worker

    # -- audio → utterances ---------------------------------------------------------------------

    async def _frames_loop(self, leg: LegStream) -> None:
        while True:
            await leg.wake.wait()
            leg.wake.clear()
            processed = 0
            while leg.frames:
                frame, wall_time = leg.frames.popleft()
                for event in leg.segmenter.push(frame, wall_time):
                    if isinstance(event, SpeechStarted):
                        await self._on_speech_started(leg)
                    elif isinstance(event, Pause):
                        self._speculate(leg, event.candidate)
                    elif isinstance(event, Resumed):
                        self._drop_speculation(leg)
                    else:
                        self.submit(leg.role, event, self._take_speculation(leg, event))
                processed += 1
                if processed % 50 == 0:
                    await asyncio.sleep(0)  # let other legs' loops run

    async def _on_speech_started(self, leg: LegStream) -> None:
        if time.monotonic() >= leg.playing_until:
            return
        leg.playing_until = 0.0
        leg.barge_epoch += 1
        self.metrics.barge_ins.inc()
        with contextlib.suppress(ConnectionError, RuntimeError):
            await leg.ws.send_str(BARGE_IN_MESSAGE)

    def submit(self, role: str, utterance: Utterance, prefetched: Speculation | None = None) -> None:
        if len(self.utterances) >= self.config.session_queue_utterances:
            dropped = self.utterances.popleft()
            if dropped.prefetched is not None:
                dropped.prefetched.drop()
            self.metrics.dropped.labels("session_utterances").inc()
        self.utterances.append(QueuedUtterance(role, utterance, prefetched))
        self._utterance_ready.set()

    # -- speculation: the engine starts at a pause, the end of speech confirms it -----------------

    def _speculate(self, leg: LegStream, candidate: Utterance) -> None:
        self._drop_speculation(leg)
        request = self._request(leg.role, candidate)
        queue: asyncio.Queue[object] = asyncio.Queue()

        async def fill() -> None:
            try:
                async for result in self.runner.run(request):
                    queue.put_nowait(result)
            except Exception as exc:
                queue.put_nowait(exc)
            finally:
                queue.put_nowait(_END)

        task = asyncio.create_task(fill(), name=f"speculation-{leg.leg_id}")
        leg.speculation = Speculation(candidate.samples.size, task, queue)

    def _drop_speculation(self, leg: LegStream) -> None:
        if leg.speculation is not None:
            leg.speculation.drop()
            leg.speculation = None
            self.metrics.speculations.labels("dropped").inc()

    def _take_speculation(self, leg: LegStream, utterance: Utterance) -> Speculation | None:
        """The speculation this end of speech confirms: the same audio, or none (dropped)."""
        speculation, leg.speculation = leg.speculation, None
        if speculation is None:
            return None
        if speculation.samples != utterance.samples.size:
            speculation.drop()
            self.metrics.speculations.labels("dropped").inc()
            return None
        self.metrics.speculations.labels("used").inc()
        return speculation

    # -- utterances → engine → listener -----------------------------------------------------------

    def speaker_language(self, role: str) -> str:
        return self.info.source_language if role == "customer" else self.info.target_language

    def listener_language(self, role: str) -> str | None:
        listener = other_role(role)
        configured = self.speaker_language(listener)
        if configured != AUTO:
            return configured
        return self.detected.get(listener)

    def should_speak_to(self, listener_role: str) -> bool:
        if self.info.mode == "assistive_translation":
            return listener_role == "customer"  # the agent hears the original speech
        return True

    async def _engine_loop(self) -> None:
        while not (self.retired and not self.utterances):
            await self._utterance_ready.wait()
            self._utterance_ready.clear()
            while self.utterances:
                item = self.utterances.popleft()
                try:
                    await self._translate(item.role, item.utterance, item.prefetched)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.metrics.utterances.labels("error").inc()
                    log.exception("session %s: utterance failed", self.id)

    def _request(self, role: str, utterance: Utterance) -> UtteranceRequest:
        listener_role = other_role(role)
        listener = self.legs.get(listener_role)
        return UtteranceRequest(
            samples=utterance.samples,
            sample_rate=utterance.sample_rate,
            source_language=self.speaker_language(role),
            target_language=self.listener_language(role),
            output_rate=listener.sample_rate if listener is not None else 16000,
            synthesize=self.should_speak_to(listener_role) and listener is not None,
        )

    async def _translate(self, role: str, utterance: Utterance,
                         prefetched: Speculation | None = None) -> None:
        listener_role = other_role(role)
        listener = self.legs.get(listener_role)
        if prefetched is not None:
            results = prefetched.results()
        else:
            results = self.runner.run(self._request(role, utterance))
        epoch = listener.barge_epoch if listener is not None else 0
        transcript: Transcript | None = None
        saved = False
        first_audio = True
        outcome = "empty"  # no speech recognized
        try:
            async for result in results:
                elapsed = time.monotonic() - utterance.detected_mono
                if isinstance(result, Transcript):
                    transcript = result
                    outcome = "untranslated"  # until a translation arrives (listener language unknown)
                    self.detected[role] = result.language
                    self.metrics.transcript_latency.observe(elapsed)
                elif isinstance(result, Translation) and transcript is not None:
                    self.metrics.translation_latency.observe(elapsed)
                    self.metrics.translations.labels(
                        result.path or "unknown", transcript.language, result.language
                    ).inc()
                    await self._save_turn(role, utterance, transcript, result)
                    saved = True
                    if outcome != "spoken":  # the first sentence may already have been spoken
                        outcome = "translated"
                elif isinstance(result, SpeechChunk):
                    sent = await self._send_chunk(listener_role, result, epoch)
                    if sent and first_audio:
                        first_audio = False
                        outcome = "spoken"
                        self.metrics.first_audio_latency.observe(time.monotonic() - utterance.detected_mono)
        except EngineError as exc:
            outcome = "engine_error"
            log.warning("session %s: %s utterance not translated: %s", self.id, role, exc)
        if transcript is not None and not saved:
            await self._save_turn(role, utterance, transcript, None)
        self.metrics.utterances.labels(outcome).inc()

    async def _save_turn(
        self, role: str, utterance: Utterance, transcript: Transcript, translation: Translation | None
    ) -> None:
        turn = TurnRecord(
            session_id=self.id,
            speaker=role,
            language=transcript.language,
            text=transcript.text,
            translation_language=translation.language if translation else None,
            translation_text=translation.text if translation else None,
            translation_path=translation.path or None if translation else None,
            started_at=utterance.started_at,
            ended_at=utterance.ended_at,
        )
        await asyncio.to_thread(insert_turn, self.store, turn)

    async def _send_chunk(self, listener_role: str, chunk: SpeechChunk, epoch: int) -> bool:
        listener = self.legs.get(listener_role)
        if listener is None or listener.barge_epoch != epoch or listener.ws.closed:
            return False  # hung up, reconnected at another epoch, or barged in: drop stale speech
        samples = resample(
            chunk.samples, chunk.sample_rate, listener.sample_rate
        )  # rate changed on reconnect
        message = stream_audio_message(samples, listener.sample_rate)
        try:
            await listener.ws.send_str(message)
        except (ConnectionError, RuntimeError):
            return False
        now = time.monotonic()
        listener.playing_until = max(now, listener.playing_until) + chunk.duration_s
        self.metrics.audio_out_seconds.inc(chunk.duration_s)
        return True
