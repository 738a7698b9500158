"""Neural translation with a CTranslate2 model: OPUS-MT (one pair per model, ``source.spm`` /
``target.spm``) or NLLB-200 (any pair, ``sentencepiece.bpe.model`` and language tokens)."""

from __future__ import annotations

import threading
from pathlib import Path

from media_bridge.engines.base import EngineError, UnsupportedPairError
from media_bridge.models.nllb_languages import NLLB_CODES  # every Whisper language NLLB has

MAX_TOKENS = 256  # an utterance is at most ~15 s of speech


class CT2Translator:
    def __init__(self, model_dir: Path, pairs: tuple[tuple[str, str], ...], threads: int = 2) -> None:
        self.model_dir = model_dir
        self.pairs = pairs
        self.threads = threads
        self.nllb = (model_dir / "sentencepiece.bpe.model").is_file()
        self._lock = threading.Lock()
        self._translator: object | None = None
        self._sp_source: object | None = None
        self._sp_target: object | None = None

    def supports(self, source: str, target: str) -> bool:
        if ("*", "*") in self.pairs:
            return self.nllb and source in NLLB_CODES and target in NLLB_CODES
        return (source, target) in self.pairs

    def load(self) -> None:
        with self._lock:
            if self._translator is not None:
                return
            try:
                import ctranslate2
                import sentencepiece
            except ImportError as exc:  # pragma: no cover - both are engine-extra dependencies
                raise EngineError(f"CTranslate2 translation needs {exc.name}: pip install it") from exc
            spm = sentencepiece.SentencePieceProcessor
            if self.nllb:
                sp = spm(model_file=str(self.model_dir / "sentencepiece.bpe.model"))
                self._sp_source = self._sp_target = sp
            else:
                for name in ("source.spm", "target.spm"):
                    if not (self.model_dir / name).is_file():
                        raise EngineError(f"KALLGLOT_CT2_MT_MODEL={self.model_dir} has no {name}")
                self._sp_source = spm(model_file=str(self.model_dir / "source.spm"))
                self._sp_target = spm(model_file=str(self.model_dir / "target.spm"))
            self._translator = ctranslate2.Translator(
                str(self.model_dir), device="cpu", intra_threads=self.threads
            )

    def translate(self, text: str, source: str, target: str) -> str:
        if not self.supports(source, target):
            raise UnsupportedPairError(f"the CTranslate2 model does not serve {source}->{target}")
        self.load()
        tokens = self._sp_source.encode(text, out_type=str)  # type: ignore[attr-defined]
        if self.nllb:
            batch = [[NLLB_CODES[source], *tokens, "</s>"]]
            prefix = [[NLLB_CODES[target]]]
            result = self._translator.translate_batch(  # type: ignore[attr-defined]
                batch, target_prefix=prefix, beam_size=2, max_decoding_length=MAX_TOKENS
            )
            out = result[0].hypotheses[0][1:]
        else:
            result = self._translator.translate_batch(  # type: ignore[attr-defined]
                [[*tokens, "</s>"]], beam_size=2, max_decoding_length=MAX_TOKENS
            )
            out = result[0].hypotheses[0]
        return str(self._sp_target.decode(out)).strip()  # type: ignore[attr-defined]
