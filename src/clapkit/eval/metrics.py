"""The benchmark's metrics, each defined once, and seeded bootstrap confidence intervals over clips.

Conventions (the references are cited where the paper is silent):

- scores are ``(n_clips, n_classes)``; ties in an argmax go to the lowest class index;
- ``average_precision``: scikit-learn's ``average_precision_score`` per class, macro-averaged over
  the classes with at least one positive clip (a class absent from the test set has no AP);
- ``f1_top1``: instance-based micro F1 (sed_eval's tagging F1, DCASE 2017 task 4 subtask A) when each
  clip is tagged with its top-scoring class — a threshold-free decision rule, since zero-shot scores
  have no calibrated threshold; ``average_precision`` is reported beside it;
- retrieval ranks are 0-based and pessimistic: a tie with the target counts against it;
  text->audio has one relevant clip per caption: R@k = P(rank < k), mAP@10 = mean of 1/(rank+1) for
  rank < 10, else 0 (LAION-CLAP ``training/train.py``); audio->text has all the clip's captions
  relevant: R@k counts a hit when any is within k, and mAP@10 is AP@10 over them, the sum of the
  precisions at the ranks (< 10) where they appear divided by the number of captions
  (Mei et al., ``audio-text_retrieval`` ``tools/utils.py``; LAION-CLAP computes it without sorting
  the ranks first, which understates it).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np


def accuracy(labels: np.ndarray, scores: np.ndarray) -> float:
    """Share of clips whose top-scoring class is their label (``labels``: class indices)."""
    return float(np.mean(per_clip_correct(labels, scores)))


def per_clip_correct(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    return (np.argmax(scores, axis=1) == np.asarray(labels)).astype(np.float64)


def average_precision(targets: np.ndarray, scores: np.ndarray) -> float:
    """Macro mean of scikit-learn's average precision over the classes present (``targets``: 0/1)."""
    from sklearn.metrics import average_precision_score

    targets = np.asarray(targets)
    present = targets.sum(axis=0) > 0
    if not present.any():
        return float("nan")
    return float(np.mean([average_precision_score(targets[:, c], scores[:, c]) for c in np.flatnonzero(present)]))


def f1_top1(targets: np.ndarray, scores: np.ndarray) -> float:
    """Instance-based micro F1 when every clip is tagged with its single best class."""
    targets = np.asarray(targets, dtype=bool)
    predicted = np.zeros_like(targets)
    predicted[np.arange(len(scores)), np.argmax(scores, axis=1)] = True
    true_positives = np.sum(predicted & targets)
    denominator = predicted.sum() + targets.sum()
    return float(2 * true_positives / denominator) if denominator else float("nan")


def ranks(similarity: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """0-based rank of each query's relevant item: ``similarity`` (queries, items), ``relevant`` the
    item index per query; ties with the relevant item count against it."""
    target = similarity[np.arange(len(similarity)), relevant]
    return np.sum(similarity >= target[:, None], axis=1) - 1


def text_to_audio_ranks(similarity: np.ndarray, caption_clip: np.ndarray) -> np.ndarray:
    """Rank of each caption's clip among all clips; ``similarity`` is (captions, clips)."""
    return ranks(similarity, caption_clip)


def audio_to_text_ranks(similarity: np.ndarray, caption_clip: np.ndarray) -> list[np.ndarray]:
    """For each clip (row of ``similarity``, (clips, captions)), the sorted 0-based ranks of its
    captions among all captions (ties counted against them)."""
    out = []
    for clip, row in enumerate(similarity):
        own = np.flatnonzero(caption_clip == clip)
        out.append(np.sort(np.sum(row[None, :] >= row[own][:, None], axis=1) - 1))
    return out


def recall_at(rank: np.ndarray, k: int) -> np.ndarray:
    return (np.asarray(rank) < k).astype(np.float64)


def reciprocal_rank_at_10(rank: np.ndarray) -> np.ndarray:
    rank = np.asarray(rank)
    return np.where(rank < 10, 1.0 / (rank + 1), 0.0)


def ap_at_10(sorted_ranks: np.ndarray) -> float:
    """AP@10 of one query with several relevant items at 0-based ``sorted_ranks``: the precision at
    each relevant item ranked within 10, summed, over the number of relevant items."""
    within = sorted_ranks[sorted_ranks < 10]
    return float(np.sum(np.arange(1, len(within) + 1) / (within + 1)) / len(sorted_ranks))


def bootstrap_interval(statistic: Callable[[np.ndarray], float], n: int, *, resamples: int = 1000,
                       seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap over clips: ``statistic(indices)`` on ``resamples`` draws of ``n``
    clip indices with replacement (seeded: the same interval on every run)."""
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, n, n)) for _ in range(resamples)])
    values = values[np.isfinite(values)]
    if not len(values):
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)
