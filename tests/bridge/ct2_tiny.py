"""A tiny CTranslate2 Transformer with random weights and a real SentencePiece model, built in a
few hundred milliseconds: enough to run the CT2 adapter's whole path (tokenize → translate →
detokenize) without downloading OPUS-MT or NLLB. Its output is meaningless text."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import sentencepiece as spm
from ctranslate2.specs import transformer_spec

CORPUS = [
    "hello world how are you",
    "the house is big",
    "una mesa para dos personas",
    "la casa es grande",
] * 20


def _train_spm() -> bytes:
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS), model_writer=model, vocab_size=30, model_type="unigram", minloglevel=2
    )
    return model.getvalue()


def _shape(name: str, d: int, ff: int, vocab: int) -> tuple[int, ...]:
    if "embeddings" in name or "projection" in name:
        return (vocab, d)
    if "layer_norm" in name:
        return (d,)
    if "ffn/linear_0" in name:
        return (ff, d)
    if "ffn/linear_1" in name:
        return (d, ff)
    if "self_attention/linear_0" in name:
        return (3 * d, d)
    if "/attention/linear_1" in name:
        return (2 * d, d)
    return (d, d)


def _owner(spec: object, parts: list[str]) -> object:
    obj = spec
    for part in parts:
        index = part.rsplit("_", 1)[-1]
        if part.startswith("layer_") and part != "layer_norm":
            obj = obj.layer[int(index)]  # type: ignore[attr-defined]
        elif part.startswith("linear_") and hasattr(obj, "linear"):
            obj = obj.linear[int(index)]  # type: ignore[attr-defined]
        elif part.startswith("embeddings_") and isinstance(getattr(obj, "embeddings", None), list):
            obj = obj.embeddings[int(index)]  # type: ignore[attr-defined]
        else:
            obj = getattr(obj, part)
    return obj


def build_tiny_model(out: Path, nllb: bool = False, extra_tokens: tuple[str, ...] = ()) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    proto = _train_spm()
    if nllb:
        (out / "sentencepiece.bpe.model").write_bytes(proto)
    else:
        (out / "source.spm").write_bytes(proto)
        (out / "target.spm").write_bytes(proto)
    sp = spm.SentencePieceProcessor(model_proto=proto)
    vocab = [sp.id_to_piece(i) for i in range(sp.get_piece_size())] + list(extra_tokens)
    d, ff = 16, 32
    rng = np.random.default_rng(0)
    spec = transformer_spec.TransformerSpec.from_config(1, 2)
    for name, value in spec.variables(ordered=True):
        if value is not None:
            continue
        parts = name.split("/")
        shape = _shape(name, d, ff, len(vocab))
        array = np.ones(shape, np.float32) if name.endswith("gamma") else rng.standard_normal(shape) * 0.1
        setattr(_owner(spec, parts[:-1]), parts[-1], np.asarray(array, dtype=np.float32))
    spec.register_source_vocabulary(vocab)
    spec.register_target_vocabulary(vocab)
    spec.validate()
    spec.optimize(quantization=None)
    spec.save(str(out))
    return out
