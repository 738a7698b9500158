"""Rule-based translation with Apertium (Debian packages apertium + apertium-<pair>), via its CLI."""

from __future__ import annotations

import re

from media_bridge.capabilities import apertium_mode, apertium_pairs
from media_bridge.engines.base import UnsupportedPairError
from media_bridge.engines.tool import run_tool

TIMEOUT_S = 30.0
# Marks Apertium leaves even with -u: '#' (generation gaps) and '@' (untranslated transfer).
_MARKS = re.compile(r"(?<!\w)[#@](?=\w)")


class ApertiumTranslator:
    def supports(self, source: str, target: str) -> bool:
        return (source, target) in apertium_pairs()

    def translate(self, text: str, source: str, target: str) -> str:
        if not self.supports(source, target):
            raise UnsupportedPairError(f"Apertium has no {source}->{target} pair installed")
        out = run_tool("apertium", ["apertium", "-u", apertium_mode(source, target)],
                       text.encode("utf-8"), TIMEOUT_S)
        return _MARKS.sub("", out.decode("utf-8", errors="replace")).strip()
