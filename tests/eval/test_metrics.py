"""The benchmark's metrics against scikit-learn and hand-computed examples, ties and absent classes
included; bootstrap intervals are seeded and contain the point estimate."""
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score

from clapkit.eval import metrics as M


def test_accuracy_breaks_ties_towards_the_lowest_class():
    scores = np.array([[0.5, 0.5, 0.0], [0.1, 0.2, 0.7], [0.3, 0.3, 0.3]])
    assert M.accuracy(np.array([0, 2, 1]), scores) == pytest.approx(2 / 3)


def test_map_is_scikit_learns_macro_over_classes_present():
    rng = np.random.default_rng(0)
    targets = (rng.random((40, 6)) < 0.3).astype(int)
    targets[:, 4] = 0  # absent from the test set: no AP for it
    scores = rng.random((40, 6)).round(1)  # rounded: many ties
    present = [c for c in range(6) if targets[:, c].any()]
    expected = np.mean([average_precision_score(targets[:, c], scores[:, c]) for c in present])
    assert M.average_precision(targets, scores) == pytest.approx(expected)


def test_map_by_hand_with_a_tie():
    # one class: positives at scores 0.9 and 0.5, a negative tied at 0.5 -> AP = 0.5·1 + 0.5·(2/3)
    assert M.average_precision(np.array([[1], [1], [0]]), np.array([[0.9], [0.5], [0.5]])) == pytest.approx(0.5 + 1 / 3)


def test_top1_f1_is_the_micro_f1_of_the_top_class_tagging():
    targets = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]])
    scores = np.array([[0.9, 0.8, 0.1], [0.2, 0.1, 0.7], [0.1, 0.2, 0.9], [0.6, 0.3, 0.2]])
    predicted = np.eye(3, dtype=int)[scores.argmax(1)]
    assert M.f1_top1(targets, scores) == pytest.approx(f1_score(targets, predicted, average="micro"))
    assert M.f1_top1(targets, scores) == pytest.approx(2 * 3 / (4 + 5))  # 3 hits, 4 tags, 5 labels


def test_retrieval_ranks_count_ties_against_the_target():
    similarity = np.array([[0.9, 0.9, 0.1], [0.2, 0.8, 0.3]])
    assert M.ranks(similarity, np.array([0, 1])).tolist() == [1, 0]


def test_text_to_audio_recall_and_map_at_10_by_hand():
    rank = np.array([0, 3, 12])
    assert M.recall_at(rank, 1).mean() == pytest.approx(1 / 3)
    assert M.recall_at(rank, 5).mean() == pytest.approx(2 / 3)
    assert M.reciprocal_rank_at_10(rank).tolist() == pytest.approx([1.0, 0.25, 0.0])


def test_audio_to_text_uses_all_captions_and_sorts_their_ranks():
    # clip 0 has captions 0, 1, 2; clip 1 has captions 3, 4
    caption_clip = np.array([0, 0, 0, 1, 1])
    similarity = np.array([[0.1, 0.9, 0.5, 0.8, 0.2],
                           [0.4, 0.3, 0.2, 0.1, 0.0]])
    ranks = M.audio_to_text_ranks(similarity, caption_clip)
    assert [r.tolist() for r in ranks] == [[0, 2, 4], [3, 4]]
    # AP@10 over 3 relevant captions at ranks 0, 2, 4: (1/1 + 2/3 + 3/5) / 3
    assert M.ap_at_10(ranks[0]) == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    # LAION-CLAP's unsorted order [2, 0, 4] would give (1/3 + 2/1 + 3/5) / 3: more than 1 for one term
    assert M.ap_at_10(np.array([12, 15])) == 0.0


def test_bootstrap_interval_is_seeded_and_brackets_the_estimate():
    values = (np.random.default_rng(1).random(300) < 0.7).astype(float)
    low, high = M.bootstrap_interval(lambda idx: values[idx].mean(), len(values), seed=3)
    assert (low, high) == M.bootstrap_interval(lambda idx: values[idx].mean(), len(values), seed=3)
    assert low < values.mean() < high and high - low < 0.15
    assert M.bootstrap_interval(lambda idx: 0.0, 0) != M.bootstrap_interval(lambda idx: 0.0, 0)  # nan, nan
