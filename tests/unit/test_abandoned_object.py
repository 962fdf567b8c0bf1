"""The abandoned-object rule and its dual background, on synthetic pictures (pure logic).

The pictures are a fixed textured scene (a grassy noise pattern) with fresh sensor noise in
every frame; objects are flat patches pasted into it; people are boxes handed in as
detections. Each behaviour is checked both ways: what must raise raises, what must not does
not.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from gridwatch.calibration.ground import GroundPlane
from gridwatch.ingest.background import BackgroundSettings, DualBackground
from gridwatch.model import Detections, IncidentEvent
from gridwatch.rules.abandoned_object import (
    AbandonedObjectRule,
    AbandonedObjectRuleConfig,
    GroundDistance,
    ImageDistance,
)
from gridwatch.rules.base import FrameSample, RuleBuildError, RuleContext
from gridwatch.rules.registry import RuleConfig, build_rule
from gridwatch.rules.zones import Zone

H, W = 120, 160
DT = 0.5
WHOLE = Zone("all", [(0, 0), (1, 0), (1, 1), (0, 1)])
LOWER = Zone("lawn", [(0, 0.5), (1, 0.5), (1, 1), (0, 1)])
Box = tuple[float, float, float, float]


def scene(seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.normal(100, 12, (H // 4, W // 4)).clip(0, 255).astype(np.uint8)
    return np.kron(base, np.ones((4, 4), np.uint8))


SCENE = scene()


def frame(
    t: float,
    objects: Sequence[tuple[Box, int]] = (),
    *,
    gain: float = 1.0,
    base: np.ndarray = SCENE,
) -> np.ndarray:
    """The scene at ``t`` with flat objects ``(box, gray level)`` and sensor noise."""
    rng = np.random.default_rng(int(t * 1000))
    img = base.astype(np.float32) + rng.normal(0, 2.0, base.shape)
    for (x1, y1, x2, y2), level in objects:
        img[round(y1 * H) : round(y2 * H), round(x1 * W) : round(x2 * W)] = level
    return np.clip(img * gain, 0, 255).astype(np.uint8)


def people(*boxes: Box) -> Detections:
    xyxy = [[b[0] * W, b[1] * H, b[2] * W, b[3] * H] for b in boxes]
    return Detections.from_arrays(
        xyxy=np.array(xyxy, np.float32).reshape(-1, 4),
        confidence=[0.9] * len(boxes),
        class_id=[0] * len(boxes),
        image_size=(W, H),
    )


NOBODY = people()
BAG: Box = (0.4, 0.7, 0.48, 0.8)
"""A bag on the lower half (bottom edge at y 0.8, x 0.4-0.48)."""


def config(**kw: object) -> AbandonedObjectRuleConfig:
    base: dict[str, object] = {
        "type": "abandoned_object",
        "zone": "lawn",
        "min_still_s": 5.0,
        "radius_image": 0.1,
        "clear_after_s": 2.0,
        "learn_s": 2.0,
        "relearn_after_s": 60.0,
    }
    base.update(kw)
    return AbandonedObjectRuleConfig.model_validate(base)


def run(
    rule: AbandonedObjectRule,
    t0: float,
    t1: float,
    objects: Sequence[tuple[Box, int]] = (),
    dets: Detections | None = NOBODY,
    gain: float = 1.0,
) -> list[tuple[float, str, str]]:
    """Feed frames every DT from t0 (incl.) to t1 (excl.); the events as (t, state, reason)."""
    out: list[tuple[float, str, str]] = []
    for t in np.arange(t0, t1, DT):
        ts = float(round(t, 3))
        sample = FrameSample(ts, frame(ts, objects, gain=gain), ts, ts, dets)
        out += [(ts, e.state.value, e.reason) for e in rule.update_frame(sample)]
    return out


def states(events: Iterable[tuple[float, str, str]]) -> list[str]:
    return [s for _, s, _ in events]


# -- the background model --------------------------------------------------------------------


def bg_run(
    bg: DualBackground,
    t0: float,
    t1: float,
    objects: Sequence[tuple[Box, int]] = (),
    exclude: Sequence[Box] = (),
    gain: float = 1.0,
) -> list:  # type: ignore[type-arg]
    return [
        bg.update(frame(float(t), objects, gain=gain), float(t), exclude)
        for t in np.arange(t0, t1, DT)
    ]


def test_background_learns_then_finds_what_stays_and_ages_it() -> None:
    bg = DualBackground(BackgroundSettings(learn_s=2.0))
    steps = bg_run(bg, 0, 3)
    assert steps[0].learning
    assert not steps[-1].learning
    steps = bg_run(bg, 3, 12.5, [(BAG, 220)])
    blobs = steps[-1].blobs
    assert len(blobs) == 1
    x1, _y1, x2, y2 = blobs[0].box
    assert abs(x1 - 0.4) <= 0.03
    assert abs(x2 - 0.48) <= 0.03
    assert abs(y2 - 0.8) <= 0.03
    assert 5.0 <= blobs[0].still_s <= 9.5  # static once the short-term background took it in
    assert blobs[0].since == pytest.approx(3.0)  # ... but it came at 3 s
    assert not any(s.blobs for s in steps[:2])  # at first it differs from both: moving


def test_a_moving_object_is_never_static() -> None:
    bg = DualBackground(BackgroundSettings(learn_s=2.0))
    bg_run(bg, 0, 2.5)
    for i, t in enumerate(np.arange(2.5, 15, DT)):
        x = 0.05 + 0.03 * i  # walks across, one box width every two frames
        step = bg.update(frame(float(t), [((x, 0.6, x + 0.06, 0.8), 30)]), float(t))
        assert all(b.still_s < 1.0 for b in step.blobs), (t, step.blobs)


def test_a_change_of_light_is_not_an_object() -> None:
    bg = DualBackground(BackgroundSettings(learn_s=2.0))
    bg_run(bg, 0, 2.5)
    steps = bg_run(bg, 2.5, 20, gain=0.6)  # the light drops to 60% at once and stays
    assert not any(s.blobs for s in steps)
    assert steps[-1].gain == pytest.approx(1 / 0.6, rel=0.05)
    # the same, with the gain correction defeated by a change of most of the picture
    half = np.zeros_like(SCENE)
    half[:, : W // 2] = 255
    step = bg.update(np.maximum(frame(21.0), half), 21.0)
    assert step.reset
    assert not step.blobs


def test_people_are_neither_objects_nor_learned() -> None:
    bg = DualBackground(BackgroundSettings(learn_s=2.0))
    bg_run(bg, 0, 2.5)
    person: Box = (0.4, 0.5, 0.48, 0.8)
    steps = bg_run(bg, 2.5, 30, [(person, 40)], exclude=[person])  # stands still 27 s
    assert not any(s.blobs for s in steps)
    # and the long-term background did not take them in: once gone, nothing is left
    steps = bg_run(bg, 30, 36)
    assert not any(s.blobs for s in steps)


def test_a_ghost_of_something_taken_away_is_absorbed_not_reported() -> None:
    bg = DualBackground(BackgroundSettings(learn_s=2.0))
    bg_run(bg, 0, 2.5, [(BAG, 220)])  # learned with the bag there
    steps = bg_run(bg, 2.5, 15)  # the bag is taken away
    assert not any(b.still_s >= 1.0 for s in steps for b in s.blobs)
    # whereas the same region with the bag put back is an object again
    steps = bg_run(bg, 15, 25, [(BAG, 220)])
    assert steps[-1].blobs


def test_what_stays_too_long_is_relearned_for_good() -> None:
    bg = DualBackground(BackgroundSettings(learn_s=2.0, relearn_after_s=10.0))
    bg_run(bg, 0, 2.5)
    steps = bg_run(bg, 2.5, 25, [(BAG, 220)])
    absorbed = [i for i, s in enumerate(steps) if s.absorbed]
    assert len(absorbed) == 1
    assert steps[absorbed[0] - 1].blobs
    assert not steps[-1].blobs
    # on request too (an operator confirmed it)
    steps = bg_run(bg, 25, 35, [(BAG, 220), ((0.1, 0.6, 0.16, 0.7), 30)])
    assert len(steps[-1].blobs) == 1
    bg.absorb()
    assert not bg_run(bg, 35, 37, [(BAG, 220), ((0.1, 0.6, 0.16, 0.7), 30)])[-1].blobs


def test_background_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="short_tau_s"):
        BackgroundSettings(short_tau_s=0)
    with pytest.raises(ValueError, match="global_change_share"):
        BackgroundSettings(global_change_share=0)


# -- the rule ------------------------------------------------------------------------------


def test_an_object_left_raises_after_min_still_and_clears_when_removed() -> None:
    rule = AbandonedObjectRule(LOWER, config())
    assert run(rule, 0, 3) == []
    events = run(rule, 3, 20, [(BAG, 220)]) + run(rule, 20, 30)
    assert events[0][:2] == (8.0, "raised")  # came at 3 s, stayed 5 s
    assert events[-1] == (21.5, "cleared", "object_removed")  # last seen at 19.5, +2 s
    assert states(events) == ["raised", "cleared"]


def test_an_object_outside_the_zone_or_too_small_does_not_raise() -> None:
    rule = AbandonedObjectRule(LOWER, config())
    run(rule, 0, 3)
    assert run(rule, 3, 20, [((0.4, 0.2, 0.48, 0.3), 220)]) == []  # upper half: not the lawn
    rule = AbandonedObjectRule(LOWER, config(min_area=0.02))
    run(rule, 0, 3)
    assert run(rule, 3, 20, [(BAG, 220)]) == []  # about 0.01 of the picture


def test_no_raise_while_a_person_stands_near_then_the_wait_starts_when_they_leave() -> None:
    rule = AbandonedObjectRule(LOWER, config())
    run(rule, 0, 3)
    beside = people((0.5, 0.5, 0.56, 0.82))  # feet at (0.53, 0.82): 0.05 from the bag's edge
    assert run(rule, 3, 20, [(BAG, 220)], beside) == []
    events = run(rule, 20, 30, [(BAG, 220)])
    assert events[0][:2] == (24.5, "raised")  # 5 s after last attended (19.5), not at once


def test_a_person_beyond_the_radius_does_not_attend_it() -> None:
    rule = AbandonedObjectRule(LOWER, config())
    run(rule, 0, 3)
    far = people((0.8, 0.5, 0.86, 0.82))  # feet 0.32 of the width away
    events = run(rule, 3, 12, [(BAG, 220)], far)
    assert states(events) == ["raised"]


def test_someone_passing_by_for_a_moment_does_not_restart_the_wait() -> None:
    rule = AbandonedObjectRule(LOWER, config(min_still_s=8.0))
    run(rule, 0, 3)
    beside = people((0.5, 0.5, 0.56, 0.82))
    events = run(rule, 3, 7, [(BAG, 220)]) + run(rule, 7, 8, [(BAG, 220)], beside)
    events += run(rule, 8, 15, [(BAG, 220)])
    assert events[0][:2] == (11.0, "raised")  # 8 s after it came, the 1 s visit ignored
    rule = AbandonedObjectRule(LOWER, config(min_still_s=8.0, onset_gap_s=0.0))
    run(rule, 0, 3)
    events = run(rule, 3, 7, [(BAG, 220)]) + run(rule, 7, 8, [(BAG, 220)], beside)
    events += run(rule, 8, 20, [(BAG, 220)])
    assert events[0][0] >= 7.5 + 8.0  # without the gap the visit restarts the wait


def test_a_parked_thing_alarms_once_then_is_relearned() -> None:
    rule = AbandonedObjectRule(LOWER, config(relearn_after_s=15.0))
    run(rule, 0, 3)
    crate: Box = (0.2, 0.6, 0.5, 0.85)
    events = run(rule, 3, 60, [(crate, 200)])
    assert states(events) == ["raised", "cleared"]
    assert events[1][2] == "relearned"
    assert 15.0 <= events[1][0] <= 25.0


def test_an_operator_confirmation_relearns_at_once() -> None:
    rule = AbandonedObjectRule(LOWER, config())
    run(rule, 0, 3)
    assert states(run(rule, 3, 10, [(BAG, 220)])) == ["raised"]
    assert [e.reason for e in rule.confirm(10.0)] == ["relearned"]
    assert run(rule, 10, 30, [(BAG, 220)]) == []
    assert rule.confirm(30.0) == []  # nothing raised: nothing to clear


def test_a_change_of_light_does_not_raise() -> None:
    rule = AbandonedObjectRule(WHOLE, config(zone="all"))
    run(rule, 0, 3)
    assert run(rule, 3, 30, gain=0.55) == []
    assert run(rule, 30, 50, gain=1.3) == []


def test_no_picture_clears_after_a_while_and_never_raises() -> None:
    rule = AbandonedObjectRule(LOWER, config())
    run(rule, 0, 3)
    assert states(run(rule, 3, 10, [(BAG, 220)])) == ["raised"]
    events: list[IncidentEvent] = []
    for t in np.arange(10, 14, DT):
        events += rule.update_frame(FrameSample(float(t), None, 9.5, float(t)))
    assert [(e.state.value, e.reason) for e in events] == [("cleared", "no_data")]


def test_schedule_end_clears() -> None:
    class Until:
        def is_active(self, ts: float) -> bool:
            return ts < 12.0

    rule = AbandonedObjectRule(LOWER, config(), schedule=Until())
    run(rule, 0, 3)
    events = run(rule, 3, 20, [(BAG, 220)])
    assert [(t, s, r) for t, s, r in events] == [
        (8.0, "raised", ""),
        (12.0, "cleared", "schedule_ended"),
    ]


def test_close_clears_a_raised_incident() -> None:
    rule = AbandonedObjectRule(LOWER, config())
    run(rule, 0, 3)
    run(rule, 3, 10, [(BAG, 220)])
    assert [e.reason for e in rule.close(10.0, "camera_stopped")] == ["camera_stopped"]


# -- config and building -------------------------------------------------------------------


def test_config_needs_exactly_one_radius_and_a_relearn_after_the_wait() -> None:
    with pytest.raises(ValidationError, match="exactly one of radius_m"):
        config(radius_image=None)
    with pytest.raises(ValidationError, match="exactly one of radius_m"):
        config(radius_m=2.0)
    with pytest.raises(ValidationError, match="relearn_after_s"):
        config(min_still_s=60, relearn_after_s=30)
    with pytest.raises(ValidationError, match="extra"):
        config(radius=3)
    parsed = TypeAdapter(RuleConfig).validate_python(
        {"type": "abandoned_object", "zone": "lawn", "radius_image": 0.1}
    )
    assert isinstance(parsed, AbandonedObjectRuleConfig)
    for name, field in AbandonedObjectRuleConfig.model_fields.items():
        assert field.title, name
        assert field.description, name


def test_metres_need_the_camera_calibration() -> None:
    cfg = config(radius_image=None, radius_m=2.0)
    ctx = RuleContext(zones={"lawn": LOWER}, what="camera c rule 0 (abandoned_object)")
    with pytest.raises(RuleBuildError, match=r"camera c rule 0.*no calibration"):
        build_rule(cfg, ctx)
    # a 20 m × 10 m lawn seen straight from above: 0.1 of the width is 2 m
    plane = GroundPlane.from_points(
        [(0, 0), (1, 0), (1, 1), (0, 1)], [(0, 0), (20, 0), (20, 10), (0, 10)]
    )
    rule = build_rule(cfg, RuleContext(zones={"lawn": LOWER}, calibration=plane))
    assert isinstance(rule, AbandonedObjectRule)
    assert isinstance(rule.nearness, GroundDistance)
    assert rule.nearness.distance((0.0, 0.5), (0.1, 0.5), 0.75) == pytest.approx(2.0)


def test_radius_in_metres_decides_who_attends() -> None:
    plane = GroundPlane.from_points(
        [(0, 0), (1, 0), (1, 1), (0, 1)], [(0, 0), (20, 0), (20, 10), (0, 10)]
    )
    ctx = RuleContext(zones={"lawn": LOWER}, calibration=plane)
    near_feet = people((0.5, 0.5, 0.56, 0.82))  # 0.02 of the height + 0.02 of width: < 1 m
    for radius, expected in ((2.0, []), (0.2, ["raised"])):
        rule = build_rule(config(radius_image=None, radius_m=radius), ctx)
        assert isinstance(rule, AbandonedObjectRule)
        run(rule, 0, 3)
        assert states(run(rule, 3, 12, [(BAG, 220)], near_feet)) == expected, radius


def test_image_distance_uses_the_width_as_unit() -> None:
    assert ImageDistance().distance((0.0, 0.0), (0.0, 0.4), aspect=0.75) == pytest.approx(0.3)
