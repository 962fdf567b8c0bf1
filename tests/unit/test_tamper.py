"""Tamper on synthetic pictures: a textured scene with per-frame sensor noise and a moving
"person", then covered, sprayed over, blurred, shifted, rotated, frozen, or only dimmed.

(The same kinds on real vtest footage are measured by the scenario suite in tests/scenarios.)
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from gridwatch.model import IncidentState
from gridwatch.rules.base import FrameSample
from gridwatch.rules.tamper import TamperRule, TamperRuleConfig, changed_fraction, view_stats

Gray = npt.NDArray[np.uint8]
RNG = np.random.default_rng(7)
BASE = cv2.GaussianBlur(RNG.integers(0, 255, (240, 320)).astype(np.uint8), (0, 0), 2)
for _ in range(40):  # buildings, windows, kerbs: edges a registration can hold on to
    x, y = RNG.integers(0, 300), RNG.integers(0, 220)
    cv2.rectangle(BASE, (int(x), int(y)), (int(x) + 20, int(y) + 15), int(RNG.integers(0, 255)), -1)


def live(t: float) -> Gray:
    """The scene at time t: a walking figure and fresh noise, as a camera would send it."""
    img = BASE.copy()
    x = int(20 + 10 * t) % 280
    cv2.rectangle(img, (x, 150), (x + 12, 190), 30, -1)
    noise = np.random.default_rng(int(t * 100)).normal(0, 3, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def cover(img: Gray) -> Gray:
    return np.full_like(img, 20)


def spray(img: Gray) -> Gray:
    out = img.copy()
    out[30:] = 70
    return out


def blur(img: Gray) -> Gray:
    return np.asarray(cv2.GaussianBlur(img, (0, 0), 3), np.uint8)


def shift(img: Gray) -> Gray:
    m = np.array([[1, 0, 14], [0, 1, 6]], np.float32)
    return np.asarray(cv2.warpAffine(img, m, (320, 240), borderMode=cv2.BORDER_REFLECT), np.uint8)


def rotate(img: Gray) -> Gray:
    m = cv2.getRotationMatrix2D((160, 120), 12, 1.2)
    return np.asarray(cv2.warpAffine(img, m, (320, 240), borderMode=cv2.BORDER_REFLECT), np.uint8)


def dim(img: Gray) -> Gray:
    return (img * 0.5).astype(np.uint8)


FROZEN = live(10.0)


def freeze(img: Gray) -> Gray:
    return FROZEN


def run(tamper: Callable[[Gray], Gray] | None, until: float = 30.0) -> list[tuple[float, str, str]]:
    """2 fps: normal for 10 s (the first 3 s learn the reference), tampered 10-22 s, then normal."""
    rule = TamperRule(TamperRuleConfig(type="tamper", min_duration_s=4, clear_after_s=2, learn_s=3))
    out = []
    for i in range(int(until * 2)):
        t = i / 2
        img = live(t)
        if tamper is not None and 10 <= t < 22:
            img = tamper(img)
        for e in rule.update_frame(FrameSample(t, img, t, t)):
            out.append((t, e.state.value, str(e.details["kind"])))
    return out


@pytest.mark.parametrize(
    ("tamper", "kind"),
    [
        (cover, "covered"),
        (spray, "covered"),
        (blur, "defocused"),
        (shift, "moved"),
        (rotate, "moved"),
        (freeze, "frozen"),
    ],
)
def test_each_kind_raises_once_and_clears(tamper: Callable[[Gray], Gray], kind: str) -> None:
    events = run(tamper)
    assert [(s, k) for _, s, k in events] == [("raised", kind), ("cleared", kind)], events
    raised_at, cleared_at = events[0][0], events[1][0]
    assert 14.0 <= raised_at <= 15.0  # 4 s after it started (onset gaps ride over key frames)
    assert 22.0 <= cleared_at <= 25.0


@pytest.mark.parametrize("tamper", [None, dim])
def test_normal_scene_and_a_change_of_light_stay_quiet(
    tamper: Callable[[Gray], Gray] | None,
) -> None:
    assert run(tamper) == []


def test_no_frame_means_no_judgement() -> None:
    rule = TamperRule(TamperRuleConfig(type="tamper", min_duration_s=1, learn_s=1))
    events = [e for t in range(20) for e in rule.update_frame(FrameSample(float(t), None, 0.0, t))]
    assert events == []
    assert rule.health() == {"tamper": [], "tamper_reference": False}


def test_tamper_that_starts_before_the_reference_is_learned_is_not_learned() -> None:
    rule = TamperRule(TamperRuleConfig(type="tamper", min_duration_s=2, learn_s=2))
    for i in range(20):
        rule.update_frame(FrameSample(i / 2, cover(live(i / 2)), i / 2, i / 2))
    assert rule.ref is None  # a covered lens never becomes the reference


def test_view_moved_for_long_becomes_the_reference() -> None:
    rule = TamperRule(
        TamperRuleConfig(
            type="tamper", min_duration_s=2, clear_after_s=2, learn_s=2, rebaseline_after_s=10
        )
    )
    events = []
    for i in range(80):
        t = i / 2
        img = live(t) if t < 5 else shift(live(t))
        events += [
            (t, e.state.value, e.reason) for e in rule.update_frame(FrameSample(t, img, t, t))
        ]
    assert [(s, r) for _, s, r in events] == [("raised", ""), ("cleared", "rebaselined")]
    assert rule.active_kinds() == []


def test_incident_per_kind_has_its_own_key() -> None:
    rule = TamperRule(TamperRuleConfig(type="tamper", min_duration_s=1, learn_s=1))
    events = []
    for i in range(30):
        t = i / 2
        img = live(t) if t < 5 else cover(live(t))
        events += rule.update_frame(FrameSample(t, img, t, t))
    (raised,) = events
    assert raised.state is IncidentState.RAISED
    assert raised.rule_key == "tamper/covered"
    assert raised.type == "tamper"
    assert raised.zone_id is None
    assert rule.health()["tamper"] == ["covered"]


def test_measures() -> None:
    flat = np.full((60, 80), 100, np.uint8)
    assert view_stats(flat).flat_share == 1.0
    assert view_stats(BASE).flat_share < 0.2
    assert changed_fraction(BASE, BASE, 0) == 0.0
    assert changed_fraction(live(0), live(0.5), 0) > 0.5


def test_unknown_check_rejected() -> None:
    with pytest.raises(ValueError, match="checks"):
        TamperRuleConfig.model_validate({"type": "tamper", "checks": ["smoke"]})
