"""Reader for the captured FreeSWITCH ESL transcripts in ``tests/fixtures/freeswitch-1.10.12/esl/*.log``.

Format (fixtures README "Formats"): a marker line ``<<< FS→controller N bytes @T s`` or
``>>> controller→FS N bytes @T s`` (``client`` instead of ``controller`` on inbound
connections), exactly N bytes as on the wire, then one ``\\n`` separator that is not data.
Lines starting with ``#`` between records are comments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import FIXTURES_DIR

ESL_DIR = FIXTURES_DIR / "esl"

_MARKER = re.compile(rb"^(<<<|>>>) (\S+) (\d+) bytes @([0-9.]+)s$")


@dataclass(frozen=True)
class Record:
    """One record of a transcript: ``from_fs`` is True for FreeSWITCH→client bytes."""

    from_fs: bool
    data: bytes
    at: float


def read_transcript(path: Path) -> list[Record]:
    raw = path.read_bytes()
    records: list[Record] = []
    pos = 0
    while pos < len(raw):
        end = raw.find(b"\n", pos)
        if end < 0:
            end = len(raw)
        line = raw[pos:end]
        pos = end + 1
        if not line or line.startswith(b"#"):
            continue
        m = _MARKER.match(line)
        if m is None:
            raise ValueError(f"{path.name}: unexpected line {line[:80]!r}")
        n = int(m.group(3))
        data = raw[pos : pos + n]
        if len(data) != n:
            raise ValueError(f"{path.name}: record truncated ({len(data)} of {n} bytes)")
        pos += n + 1  # skip the separator
        records.append(Record(from_fs=m.group(1) == b"<<<", data=data, at=float(m.group(4))))
    return records


def transcript_paths() -> list[Path]:
    return sorted(ESL_DIR.glob("*.log"))


def fs_records(name: str) -> list[bytes]:
    """The FreeSWITCH→client frames of transcript ``name`` (e.g. ``"outbound-call-udp"``)."""
    return [r.data for r in read_transcript(ESL_DIR / f"{name}.log") if r.from_fs]


def client_records(name: str) -> list[bytes]:
    return [r.data for r in read_transcript(ESL_DIR / f"{name}.log") if not r.from_fs]
