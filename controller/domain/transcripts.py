"""Transcript turns of a session (written by the bridge), as the API shows them."""

from __future__ import annotations

from dataclasses import dataclass

from controller.domain.timeutil import iso
from controller.store import Store


@dataclass(frozen=True)
class Turn:
    sequence: int
    speaker: str
    language: str
    text: str
    translation_language: str | None
    translation_text: str | None
    started_at: float
    translation_path: str | None = None  # how the bridge translated it (translation_paths names)

    def to_json(self) -> dict[str, object]:
        translation = None
        if self.translation_text is not None:
            translation = {
                "language": self.translation_language,
                "text": self.translation_text,
                "path": self.translation_path,
            }
        return {
            "sequence": self.sequence,
            "speaker": self.speaker,
            "language": self.language,
            "text": self.text,
            "translation": translation,
            "timestamp": iso(self.started_at),
        }


def list_turns(store: Store, session_id: str) -> list[Turn]:
    rows = store.query(
        "SELECT sequence, speaker, language, text, translation_language, translation_text, started_at,"
        " translation_path FROM transcript_turns WHERE session_id = ? ORDER BY sequence",
        (session_id,),
    )
    return [Turn(*tuple(r)) for r in rows]
