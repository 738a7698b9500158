"""A long-lived Apertium pipeline per language pair, in null-flush mode.

``apertium`` starts a dozen processes (analyser, tagger, transfer stages, generator) per call,
which costs ≈100 ms before any translating — on the path between the end of a caller's speech
and the first translated audio. Here the pair's mode pipeline runs once, with every stage's
``-z`` (flush at each NUL byte; ``apertium-wblank-mode -z`` writes it), and each sentence goes
through it as one NUL-terminated block.

Apertium's own ``txt`` deformatter buffers its input, so the text is deformatted here the way
it would: the stream format's special characters are backslash-escaped and the line end becomes
a superblank (``[][\\n]``), which is also what lets the bilingual stage flush.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import threading
import time
from pathlib import Path

from media_bridge.engines.base import EngineError

MODE_DIRS = (Path("/usr/share/apertium/modes"), Path("/usr/local/share/apertium/modes"))
_SPECIAL = re.compile(r"([\\\[\]^$/@<>{}])")  # what apertium-destxt escapes
_KEPT_AS_IS = re.compile(r"(~+)")  # ... and wraps in a superblank (the generator reads ~ itself)
_ESCAPED = re.compile(r"\\(.)")
_SUPERBLANK = re.compile(r"(?<!\\)\[([^\]]*)\]")
LINE_END = "[][\n]"


def deformat(text: str) -> bytes:
    """One block of the stream format: escaped text, the line end as a superblank, then NUL."""
    escaped = _KEPT_AS_IS.sub(r"[\1]", _SPECIAL.sub(r"\\\1", text.replace("\n", " ")))
    return (escaped + LINE_END).encode("utf-8") + b"\0"


def reformat(block: bytes) -> str:
    """The generator's output back to text, as apertium-retxt does: superblanks give back what
    they hold, escapes are undone."""
    text = _SUPERBLANK.sub(r"\1", block.decode("utf-8", errors="replace"))
    return _ESCAPED.sub(r"\1", text).strip()


def mode_file(mode: str) -> Path | None:
    for folder in MODE_DIRS:
        path = folder / f"{mode}.mode"
        if path.is_file():
            return path
    return None


class ApertiumPipeline:
    """One pair's pipeline; thread-safe (one sentence at a time); restarted after a failure."""

    def __init__(self, mode: str, timeout_s: float) -> None:
        self.mode = mode
        self.timeout_s = timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def translate(self, text: str) -> str:
        with self._lock:
            process = self._process or self._start()
            try:
                assert process.stdin is not None
                process.stdin.write(deformat(text))
                process.stdin.flush()
                return reformat(self._read_block(process))
            except (OSError, EngineError) as exc:
                self._stop()
                raise EngineError(f"apertium {self.mode} pipeline failed: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _start(self) -> subprocess.Popen[bytes]:
        path = mode_file(self.mode)
        if path is None:
            raise EngineError(f"apertium mode {self.mode} is not installed")
        script = subprocess.run(["apertium-wblank-mode", "-z", str(path)], capture_output=True,
                                text=True, timeout=10, check=False)
        if script.returncode != 0 or not script.stdout.strip():
            raise EngineError(f"apertium-wblank-mode failed for {self.mode}: {script.stderr.strip()[:200]}")
        # $1: the generator's option (-n: no unknown-word marks, as `apertium -u`); $2: tagger's.
        self._process = subprocess.Popen(
            ["bash", "-c", script.stdout.strip(), "apertium", "-n", ""],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopping it stops every stage
        )
        return self._process

    def _read_block(self, process: subprocess.Popen[bytes]) -> bytes:
        assert process.stdout is not None
        fd = process.stdout.fileno()
        deadline = time.monotonic() + self.timeout_s
        out = b""
        while not out.endswith(b"\0"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise EngineError(f"no answer within {self.timeout_s:g} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EngineError(f"the pipeline exited ({process.poll()})")
            out += chunk
        return out[:-1]

    def _stop(self) -> None:
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=5)
            self._process = None
