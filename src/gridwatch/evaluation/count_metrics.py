"""How far the count a crowding rule sees is from the ground truth's count.

A crowding alert is only as good as the count under it, and incident precision and recall hide
a count that is off by a third but still on the right side of the threshold. So the evaluation
pairs, for every analysed frame and every crowding zone, the count the rule saw with the count
the ground truth gives (:mod:`gridwatch.evaluation.ground_truth`) and reports:

``frames``
    analysed frames with a truth (per zone; pooled over zones for a scene);
``mae``
    mean absolute error, people;
``mape``
    mean absolute percentage error, %, over the frames whose truth is above zero (a frame
    with nobody has no relative error); ``None`` when there is no such frame;
``bias``
    mean of predicted − truth: negative when the detector misses people, positive when it
    counts things that are not (or not annotated as) people;
``mean_truth`` / ``mean_predicted``
    the average counts, for scale;
``spread_predicted`` / ``spread_truth``
    frame-to-frame spread: the mean absolute difference between the counts of consecutive
    analysed frames of one zone. People come and go slowly, so a predicted spread well above
    the truth's is flicker (a person detected, lost, detected), which makes thresholds fire
    and clear on noise; it is reported next to the truth's because a busy scene changes too.

>>> m = count_metrics([CountSample(0.0, 4, 5), CountSample(0.5, 5, 5), CountSample(1.0, 0, 0)])
>>> m.frames, m.mae, m.mape, m.bias, m.spread_predicted, m.spread_truth
(3, 0.333, 10.0, -0.333, 3.0, 2.5)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class CountSample:
    """One analysed frame of one zone: the count the rule saw and the truth's."""

    video_s: float
    predicted: int
    truth: int


@dataclass(frozen=True)
class CountMetrics:
    """Count error over some frames (see the module docstring for each figure)."""

    frames: int
    mae: float | None
    mape: float | None
    bias: float | None
    mean_truth: float | None
    mean_predicted: float | None
    spread_predicted: float | None
    spread_truth: float | None

    def as_json(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "mae": self.mae,
            "mape": self.mape,
            "bias": self.bias,
            "mean_truth": self.mean_truth,
            "mean_predicted": self.mean_predicted,
            "spread_predicted": self.spread_predicted,
            "spread_truth": self.spread_truth,
        }

    @property
    def finite(self) -> bool:
        """Every figure that is set is a finite number (what a test can demand today)."""
        return all(
            v is None or math.isfinite(v)
            for v in (self.mae, self.mape, self.bias, self.spread_predicted, self.spread_truth)
        )


def _mean(values: Sequence[float], digits: int = 3) -> float | None:
    return round(sum(values) / len(values), digits) if values else None


def _steps(series: Sequence[int]) -> list[float]:
    return [float(abs(b - a)) for a, b in itertools.pairwise(series)]


def pooled_metrics(groups: Iterable[Sequence[CountSample]]) -> CountMetrics:
    """Metrics over several zones' series: errors pooled over all their frames, spreads over
    the consecutive pairs *within* each series (a step from one zone to another is no step).

    >>> a = [CountSample(0, 2, 2), CountSample(1, 2, 3)]
    >>> b = [CountSample(0, 9, 10)]
    >>> m = pooled_metrics([a, b])
    >>> m.frames, m.mae, m.mape, m.spread_predicted, m.spread_truth
    (3, 0.667, 14.444, 0.0, 1.0)
    >>> pooled_metrics([]).mae is None
    True
    """
    samples: list[CountSample] = []
    pred_steps: list[float] = []
    truth_steps: list[float] = []
    for group in groups:
        ordered = sorted(group, key=lambda s: s.video_s)
        samples += ordered
        pred_steps += _steps([s.predicted for s in ordered])
        truth_steps += _steps([s.truth for s in ordered])
    errors = [float(s.predicted - s.truth) for s in samples]
    relative = [abs(s.predicted - s.truth) / s.truth * 100.0 for s in samples if s.truth > 0]
    return CountMetrics(
        frames=len(samples),
        mae=_mean([abs(e) for e in errors]),
        mape=_mean(relative),
        bias=_mean(errors),
        mean_truth=_mean([float(s.truth) for s in samples]),
        mean_predicted=_mean([float(s.predicted) for s in samples]),
        spread_predicted=_mean(pred_steps),
        spread_truth=_mean(truth_steps),
    )


def count_metrics(samples: Sequence[CountSample]) -> CountMetrics:
    """Metrics of one zone's series of analysed frames (any order: sorted by time here)."""
    return pooled_metrics([samples])
