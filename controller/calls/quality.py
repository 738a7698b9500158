"""Call quality of one leg, from the RTP statistics FreeSWITCH puts on CHANNEL_HANGUP_COMPLETE.

FreeSWITCH 1.10 (switch_core_media.c ``set_stats``) sets ``rtp_audio_<name>`` channel variables
when the channel hangs up; they travel only on CHANNEL_HANGUP_COMPLETE (not CHANNEL_HANGUP).
What they mean (switch_rtp.c):

- ``in_flaw_total`` counts the packets lost (sequence gaps) plus a penalty of 2 per loss event
  (do_mos: the packet after a gap adds its consecutive-flaw penalty), so one packet lost alone
  costs 3 flaws — measured on the real switch: 54 packets dropped one at a time, 162 flaws.
- ``in_quality_percentage`` is R = 100 × (received − flaws) / received and ``in_mos`` is
  1 + 0.035·R + 7·10⁻⁶·R·(R − 60)·(100 − R): 4.5 for a clean call (both include the penalty).
- ``in_jitter_loss_rate`` is lost / received, recomputed every 5 s of media (burstr_calculate),
  so the last < 5 s of a call, and a call shorter than 5 s, are not in it.
- ``in_jitter_min_variance`` / ``in_jitter_max_variance`` bound the running variance (ms²) of the
  packet inter-arrival time over the call; the maximum is often set by the first packets.
- ``in_media_packet_count`` counts audio packets received: 0 means no media ever flowed.
  Hangup cause ``MEDIA_TIMEOUT`` means RTP stopped for longer than ``media_timeout`` (ms).

A call that never had media (refused before answer) carries none of these: quality is None.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

PREFIX = "variable_rtp_audio_"
MEDIA_TIMEOUT_CAUSE = "MEDIA_TIMEOUT"


@dataclass(frozen=True)
class LegQuality:
    mos: float  # 1.0–4.5, FreeSWITCH's estimate from R
    r_factor: float  # FreeSWITCH's in_quality_percentage (0–100)
    jitter_min_ms: float  # √ of the smallest running inter-arrival variance on the call
    jitter_max_ms: float  # √ of the largest (an upper bound; call start included)
    packets_received: int  # audio packets from the party
    packets_sent: int  # audio packets to the party
    flaws: int  # FreeSWITCH's flaw total: packets lost + 2 per loss event
    packet_loss_pct: float  # FreeSWITCH's loss rate × 100 (refreshed every 5 s of media)
    media_flowed: bool  # any audio packet received at all
    rtp_timeout: bool  # hung up by FreeSWITCH because RTP stopped (MEDIA_TIMEOUT)
    codec: str | None  # rtp_use_codec_name (e.g. PCMU, opus)

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> LegQuality:
        return cls(**data)  # type: ignore[arg-type]


def _number(get: Callable[[str], str | None], name: str) -> float | None:
    raw = get(PREFIX + name)
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _root(variance: float | None) -> float:
    return round(math.sqrt(max(variance or 0.0, 0.0)), 2)


def quality_from_event(get: Callable[[str], str | None], hangup_cause: str | None) -> LegQuality | None:
    """The leg's quality from a CHANNEL_HANGUP_COMPLETE's headers (``get(header)``), or None when
    the event carries no RTP statistics (the call never had a media session)."""
    mos = _number(get, "in_mos")
    received = _number(get, "in_media_packet_count")
    if mos is None or received is None:
        return None
    codec = get("variable_rtp_use_codec_name")
    return LegQuality(
        mos=round(mos, 2),
        r_factor=round(_number(get, "in_quality_percentage") or 0.0, 2),
        jitter_min_ms=_root(_number(get, "in_jitter_min_variance")),
        jitter_max_ms=_root(_number(get, "in_jitter_max_variance")),
        packets_received=int(received),
        packets_sent=int(_number(get, "out_media_packet_count") or 0),
        flaws=int(_number(get, "in_flaw_total") or 0),
        packet_loss_pct=round(100.0 * (_number(get, "in_jitter_loss_rate") or 0.0), 2),
        media_flowed=received > 0,
        rtp_timeout=hangup_cause == MEDIA_TIMEOUT_CAUSE,
        codec=codec or None,
    )
