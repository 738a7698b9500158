"""Running an engine's command-line tool (apertium, espeak-ng, piper) with one error contract."""

from __future__ import annotations

import subprocess

from media_bridge.engines.base import EngineError


def run_tool(name: str, argv: list[str], stdin: bytes, timeout_s: float) -> bytes:
    """Feed ``stdin`` to the tool and return its stdout; any failure is an :class:`EngineError`
    naming the tool (with the start of its stderr), never a hang past ``timeout_s``."""
    try:
        out = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EngineError(f"{name} failed: {exc}") from exc
    if out.returncode != 0:
        detail = out.stderr.decode(errors="replace").strip()[:200]
        raise EngineError(f"{name} exited with {out.returncode}: {detail}")
    return out.stdout
