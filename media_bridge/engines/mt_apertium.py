"""Rule-based translation with Apertium (Debian packages apertium + apertium-<pair>), via its CLI."""

from __future__ import annotations

import re
import subprocess

from media_bridge.capabilities import apertium_mode, apertium_pairs
from media_bridge.engines.base import EngineError, UnsupportedPairError

TIMEOUT_S = 30.0
# Marks Apertium leaves even with -u: '#' (generation gaps) and '@' (untranslated transfer).
_MARKS = re.compile(r"(?<!\w)[#@](?=\w)")


class ApertiumTranslator:
    def supports(self, source: str, target: str) -> bool:
        return (source, target) in apertium_pairs()

    def translate(self, text: str, source: str, target: str) -> str:
        if not self.supports(source, target):
            raise UnsupportedPairError(f"Apertium has no {source}->{target} pair installed")
        try:
            out = subprocess.run(
                ["apertium", "-u", apertium_mode(source, target)],
                input=text,
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EngineError(f"apertium failed: {exc}") from exc
        if out.returncode != 0:
            raise EngineError(f"apertium exited with {out.returncode}: {out.stderr.strip()[:200]}")
        return _MARKS.sub("", out.stdout).strip()
