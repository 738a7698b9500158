"""The mod_audio_stream wire format (DESIGN.md §4, docs/media-wire.md): the metadata text frame,
our close codes, and the JSON messages the bridge sends."""

from __future__ import annotations

import base64
import enum
import json
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from media_bridge.audio import SUPPORTED_RATES, encode_l16


class CloseCode(enum.IntEnum):
    """Websocket close codes the bridge uses (4xxx: application-defined, RFC 6455 §7.4.2)."""

    NORMAL = 1000
    GOING_AWAY = 1001  # bridge shutting down
    REPLACED = 4001  # the same leg (or role) connected again; the newer socket wins
    BAD_METADATA = 4400  # first frame missing, not JSON, or a field is wrong
    UNKNOWN_SESSION = 4404
    METADATA_TIMEOUT = 4408
    SESSION_ENDED = 4410
    BAD_FRAME = 4415  # binary frame size is not a whole number of 20 ms frames, or text after metadata


class MetadataError(ValueError):
    """Bad metadata; the message names the field."""


class StreamMetadata(BaseModel):
    """The first text frame. Only ``session_id`` and ``role`` are required (a stock controller may
    send no more); mode and languages come from the store, which is authoritative."""

    model_config = ConfigDict(extra="ignore")

    session_id: str = Field(min_length=1, max_length=64)
    role: Literal["customer", "agent"]
    leg_id: str | None = Field(default=None, max_length=64)
    call_uuid: str | None = Field(default=None, max_length=64)
    mode: str | None = None
    source_language: str | None = None
    target_language: str | None = None
    peer_leg_id: str | None = None
    sample_rate: int = 16000


def parse_metadata(text: str, session_id: str, leg_id: str) -> StreamMetadata:
    try:
        raw = json.loads(text)
    except ValueError:
        raise MetadataError("metadata is not JSON") from None
    if not isinstance(raw, dict):
        raise MetadataError("metadata must be a JSON object")
    try:
        meta = StreamMetadata.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "metadata"
        raise MetadataError(f"{field}: {first['msg']}") from None
    if meta.session_id != session_id:
        raise MetadataError("session_id: does not match the URL path")
    if meta.leg_id is not None and meta.leg_id != leg_id:
        raise MetadataError("leg_id: does not match the URL path")
    if meta.sample_rate not in SUPPORTED_RATES:
        raise MetadataError(f"sample_rate: must be 8000 or 16000, got {meta.sample_rate}")
    return meta


def stream_audio_message(samples: np.ndarray, sample_rate: int) -> str:
    """``streamAudio`` with raw L16: mod_audio_stream writes it to a file and fires ::play."""
    data = base64.b64encode(encode_l16(samples)).decode("ascii")
    return json.dumps(
        {
            "type": "streamAudio",
            "data": {"audioDataType": "raw", "sampleRate": sample_rate, "audioData": data},
        },
        separators=(",", ":"),
    )


BARGE_IN_MESSAGE = json.dumps({"type": "kallglot.barge_in"}, separators=(",", ":"))
