"""Count error figures: what each one measures, on series small enough to check by hand."""

from __future__ import annotations

import pytest

from gridwatch.evaluation.count_metrics import CountSample, count_metrics, pooled_metrics


def _series(pred: list[int], truth: list[int]) -> list[CountSample]:
    return [CountSample(i * 0.5, p, t) for i, (p, t) in enumerate(zip(pred, truth, strict=True))]


def test_error_figures() -> None:
    m = count_metrics(_series([8, 10, 12, 0], [10, 10, 10, 0]))
    assert m.frames == 4
    assert m.mae == pytest.approx(1.0)  # (2 + 0 + 2 + 0) / 4
    assert m.mape == pytest.approx(13.333, abs=1e-3)  # (20 + 0 + 20) / 3: truth-0 frame left out
    assert m.bias == pytest.approx(0.0)
    assert m.mean_truth == pytest.approx(7.5)
    assert m.mean_predicted == pytest.approx(7.5)
    assert m.finite


def test_bias_says_which_way() -> None:
    assert count_metrics(_series([3, 3], [5, 5])).bias == pytest.approx(-2.0)
    assert count_metrics(_series([6, 6], [5, 5])).bias == pytest.approx(1.0)


def test_spread_is_flicker_between_consecutive_frames() -> None:
    # the truth holds at 5; the prediction flickers 5, 3, 5, 3: steps of 2
    m = count_metrics(_series([5, 3, 5, 3], [5, 5, 5, 5]))
    assert m.spread_predicted == pytest.approx(2.0)
    assert m.spread_truth == pytest.approx(0.0)
    # order of arrival does not matter: samples are sorted by time
    shuffled = list(reversed(_series([5, 3, 5, 3], [5, 5, 5, 5])))
    assert count_metrics(shuffled).spread_predicted == pytest.approx(2.0)


def test_pooling_zones_keeps_their_steps_apart() -> None:
    a = _series([1, 1, 1], [1, 1, 1])
    b = _series([9, 9], [10, 10])
    m = pooled_metrics([a, b])
    assert m.frames == 5
    assert m.mae == pytest.approx(0.4)
    assert m.spread_predicted == pytest.approx(0.0)  # no step from zone a's 1 to zone b's 9
    assert m.mape == pytest.approx(4.0)  # (0 + 0 + 0 + 10 + 10) / 5


def test_empty_and_all_zero_truth() -> None:
    empty = count_metrics([])
    assert empty.frames == 0
    assert empty.mae is None
    assert empty.mape is None
    assert empty.spread_predicted is None
    assert empty.finite
    zeros = count_metrics(_series([0, 1], [0, 0]))
    assert zeros.mape is None  # no frame with a truth to be relative to
    assert zeros.mae == pytest.approx(0.5)
    assert set(zeros.as_json()) == {
        "frames", "mae", "mape", "bias", "mean_truth", "mean_predicted", "spread_predicted",
        "spread_truth",
    }  # fmt: skip
