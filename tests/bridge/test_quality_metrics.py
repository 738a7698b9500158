"""bench/quality_metrics.py: known inputs → known outputs. The chrF values were computed with
sacrebleu 2.6.0's ``CHRF()`` and the WER ones with jiwer 4.0.0 on the normalized words, once, by
hand; neither package is a dependency."""

from __future__ import annotations

import pytest

from bench.quality_metrics import chrf, edit_distance, normalize, sentence_chrf, wer


def test_normalize_drops_case_and_punctuation_keeps_apostrophes() -> None:
    assert normalize("¿Podría enviarme, por favor?") == ["podría", "enviarme", "por", "favor"]
    assert normalize("Puis-je vous aider aujourd’hui ?") == ["puis", "je", "vous", "aider", "aujourd'hui"]
    assert normalize("Здравствуйте, МИР!") == ["здравствуйте", "мир"]


def test_edit_distance() -> None:
    assert edit_distance("a b c d".split(), "a x c".split()) == 2  # one substitution, one deletion
    assert edit_distance([], "a b".split()) == 2
    assert edit_distance("a b".split(), "a b".split()) == 0


def test_wer_is_corpus_edits_over_reference_words() -> None:
    refs = ["Su reembolso llegará la próxima semana.", "Can I speak to a supervisor, please?",
            "Please confirm your address and your date of birth.", "The cat", "abc"]
    hyps = ["Su devolución llegará la semana próxima.", "Can I talk to a supervisor please?",
            "Please confirm your address and date of birth.", "the cat", "xyz"]
    assert wer(refs, hyps) == pytest.approx(0.24)  # 6 edits / 25 words; jiwer: 0.24
    assert wer(["a b"], ["a b c d"]) == 1.0  # insertions count
    with pytest.raises(ValueError):
        wer(["a"], [])


def test_chrf_matches_sacrebleu() -> None:
    pairs = [
        ("Su reembolso llegará la próxima semana.", "Su devolución llegará la semana próxima.", 54.782533),
        ("Can I speak to a supervisor, please?", "Can I talk to a supervisor please?", 64.874986),
        ("Please confirm your address and your date of birth.",
         "Please confirm your address and date of birth.", 85.430283),
        ("Hola, llamo por mi última factura.", "", 0.0),
        ("The cat", "The cat", 100.0),
        ("abc", "xyz", 0.0),
        ("ab", "abcdefgh ijk", 45.058140),
        ("Привет, мир!", "привет мир", 37.666209),
    ]
    for ref, hyp, expected in pairs:
        assert sentence_chrf(ref, hyp) == pytest.approx(expected, abs=1e-5), hyp
    corpus = chrf([r for r, _, _ in pairs[:6]], [h for _, h, _ in pairs[:6]])
    assert corpus == pytest.approx(58.093596, abs=1e-5)
    short = [("ab", "abcdefgh ijk"), ("abcdefghij", "ab"), ("Привет, мир!", "привет мир"), ("a", "")]
    assert chrf([r for r, _ in short], [h for _, h in short]) == pytest.approx(24.115748, abs=1e-5)
