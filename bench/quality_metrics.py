"""Word error rate and chrF for bench/quality_bench.py, in plain Python (no jiwer / sacrebleu).

WER: words are compared after :func:`normalize` (Unicode NFKC, lower case, punctuation removed,
apostrophes kept inside words); the corpus figure is the sum of the word-level Levenshtein
distances (substitutions + deletions + insertions) over the sum of reference words, as jiwer's
``wer`` over a list of sentences computes it.

chrF: Popović (2015) as sacrebleu's ``CHRF()`` defaults compute it (chrF2, character 1..6-grams,
no word n-grams, whitespace removed, case and punctuation kept, not smoothed). Corpus level sums
each order's n-gram counts over all sentences first, then averages precision and recall over the
orders and takes F-beta (beta = 2: recall weighs twice as much); 0..100. Cross-checked against
sacrebleu 2.x on the values in tests/bridge/test_quality_metrics.py.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

CHAR_ORDER = 6
BETA = 2.0

_WORD = re.compile(r"\w+(?:['’]\w+)*")


def normalize(text: str) -> list[str]:
    """``"¿Podría enviarme, por favor?"`` → ``["podría", "enviarme", "por", "favor"]``."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower().replace("’", "'"))


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance between two word lists (each edit costs 1)."""
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


def wer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus word error rate, 0.0 = every word right (it can pass 1.0 with many insertions)."""
    if len(references) != len(hypotheses):
        raise ValueError("as many hypotheses as references are needed")
    edits = words = 0
    for ref, hyp in zip(references, hypotheses, strict=True):
        r = normalize(ref)
        edits += edit_distance(r, normalize(hyp))
        words += len(r)
    if words == 0:
        raise ValueError("the references hold no words")
    return edits / words


def _char_ngrams(text: str, n: int) -> Counter[str]:
    chars = "".join(text.split())
    return Counter(chars[i : i + n] for i in range(len(chars) - n + 1))


def chrf_statistics(reference: str, hypothesis: str) -> list[int]:
    """Per order n = 1..6: hypothesis n-grams, reference n-grams, matched n-grams (flattened)."""
    stats: list[int] = []
    for n in range(1, CHAR_ORDER + 1):
        hyp, ref = _char_ngrams(hypothesis, n), _char_ngrams(reference, n)
        # As sacrebleu: a hypothesis n-gram counts only where the reference is long enough to have one.
        stats += [sum(hyp.values()) if ref else 0, sum(ref.values()), sum((hyp & ref).values())]
    return stats


def _f_score(stats: Sequence[int]) -> float:
    factor = BETA**2
    precision = recall = 0.0
    effective = 0  # orders that both sides are long enough to have
    for n in range(CHAR_ORDER):
        hyp, ref, match = stats[3 * n : 3 * n + 3]
        if hyp > 0 and ref > 0:
            precision += match / hyp
            recall += match / ref
            effective += 1
    if effective == 0:
        return 0.0
    precision, recall = precision / effective, recall / effective
    if precision + recall == 0:
        return 0.0
    return 100 * (1 + factor) * precision * recall / (factor * precision + recall)


def chrf(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus chrF2 (0..100) of hypotheses against one reference each."""
    if len(references) != len(hypotheses):
        raise ValueError("as many hypotheses as references are needed")
    total = [0] * (3 * CHAR_ORDER)
    for ref, hyp in zip(references, hypotheses, strict=True):
        total = [a + b for a, b in zip(total, chrf_statistics(ref, hyp), strict=True)]
    return _f_score(total)


def sentence_chrf(reference: str, hypothesis: str) -> float:
    return _f_score(chrf_statistics(reference, hypothesis))
