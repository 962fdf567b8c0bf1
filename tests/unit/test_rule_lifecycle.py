"""What every rule shares: the incident lifecycle (Episode), deterministic ids, and per-track
state that stays bounded on a 24/7 stream of new track ids."""

from __future__ import annotations

import numpy as np
import pytest

from gridwatch.model import Detections
from gridwatch.rules.base import Episode, EpisodeParams
from gridwatch.rules.fall import FallRule, FallRuleConfig
from gridwatch.rules.intrusion import IntrusionRule, IntrusionRuleConfig
from gridwatch.rules.line_crossing import LineCrossingRule, LineCrossingRuleConfig
from gridwatch.rules.loitering import LoiteringRule, LoiteringRuleConfig
from gridwatch.rules.vehicle_stop import VehicleStopRule, VehicleStopRuleConfig
from gridwatch.rules.zones import Zone
from gridwatch.tracking.tracks import TrackState, TrackStitcher, tracked


def steps(ep: Episode, ons: list[int | None], **kw: object) -> list[tuple[int, str, int]]:
    out = []
    for t, on in enumerate(ons):
        events = ep.step(float(t), bool(on), observed=on is not None, count=on or 0, **kw)  # type: ignore[arg-type]
        out += [(t, e.state.value, e.sequence) for e in events]
    return out


@pytest.mark.parametrize(
    ("params", "ons", "expected"),
    [
        # raised after min_duration, cleared after clear_after_s; sequence numbers 0, 1
        (EpisodeParams(2, 2, 0, 0), [1, 1, 1, 0, 0, 0], [(2, "raised", 0), (4, "cleared", 1)]),
        # a dip restarts the onset without a gap allowance ...
        (EpisodeParams(2, 2, 0, 0), [1, 1, 0, 1, 1, 1], [(5, "raised", 0)]),
        # ... and not with one
        (EpisodeParams(2, 2, 1, 0), [1, 1, 0, 1, 1, 1], [(3, "raised", 0)]),
        # updates when the count changes, throttled by update_interval_s
        (
            EpisodeParams(0, 5, 0, 2),
            [1, 2, 3, 4, 5, 6],
            [(0, "raised", 0), (2, "updated", 1), (4, "updated", 2)],
        ),
        # no data never raises, and clears a raised incident
        (
            EpisodeParams(0, 2, 0, 0),
            [None, 1, None, None, None],
            [(1, "raised", 0), (3, "cleared", 1)],
        ),
    ],
)
def test_episode_table(
    params: EpisodeParams, ons: list[int | None], expected: list[tuple[int, str, int]]
) -> None:
    assert steps(Episode("k", "t", None, params), ons) == expected


def test_episode_onset_and_reasons() -> None:
    ep = Episode("loitering/z", "loitering", "z", EpisodeParams(0, 1, 0, 0))
    (raised,) = ep.step(10.0, True, count=1, onset=4.0)
    assert raised.started_at == 4.0
    (cleared,) = ep.step(12.0, False, clear_reason="left_zone")
    assert cleared.reason == "left_zone"
    assert cleared.incident_id("c") == raised.incident_id("c")
    (again,) = ep.step(20.0, True, count=1)
    assert again.incident_id("c") != raised.incident_id("c")  # a new episode, a new id
    (ended,) = ep.step(21.0, True, scheduled=False)
    assert ended.reason == "schedule_ended"
    assert ep.force_clear(22.0, "x") == []


def test_episode_params_reject_bad_values() -> None:
    with pytest.raises(ValueError, match="clear_after_s"):
        EpisodeParams(clear_after_s=float("nan"))


SIZE = (1000, 1000)
ZONE = Zone("all", [(0, 0), (1, 0), (1, 1), (0, 1)])


def one_new_track(i: int, rng: np.random.Generator) -> Detections:
    x, y = rng.uniform(50, 950, 2)
    return Detections.from_arrays(
        xyxy=[[x - 10, y - 40, x + 10, y]],
        confidence=[0.9],
        class_id=[int(rng.integers(0, 3))],
        tracker_id=[i],
        image_size=SIZE,
    )


RULES = {
    "loitering": lambda: LoiteringRule(
        ZONE,
        LoiteringRuleConfig(
            type="loitering", zone=ZONE.id, min_dwell_s=30, max_gap_s=3, clear_after_s=5
        ),
    ),
    "vehicle_stop": lambda: VehicleStopRule(
        ZONE,
        VehicleStopRuleConfig(
            type="vehicle_stop", zone=ZONE.id, min_dwell_s=30, max_gap_s=5, clear_after_s=5
        ),
        vehicle_classes=[2],
    ),
    "intrusion": lambda: IntrusionRule(ZONE, IntrusionRuleConfig(type="intrusion", zone=ZONE.id)),
    "line_crossing": lambda: LineCrossingRule(
        "l",
        ((0, 0.5), (1, 0.5)),
        LineCrossingRuleConfig(
            type="line_crossing", id="l", line=((0, 0.5), (1, 0.5)), max_count=5
        ),
    ),
    "fall": lambda: FallRule(None, FallRuleConfig(type="fall"), fall_classes={1}),
}


@pytest.mark.parametrize("name", sorted(RULES))
def test_state_stays_bounded_on_a_long_stream_of_new_tracks(name: str) -> None:
    """A day at 5 fps is 432,000 frames; 10,000 frames of always-new ids at 5 fps (2,000 s)
    exercise the same expiry: state is kept only for tracks seen in the last few seconds."""
    rule = RULES[name]()
    rng = np.random.default_rng(1)
    sizes = []
    for i in range(10_000):
        rule.update(one_new_track(i + 1, rng), i / 5.0)
        if i % 1000 == 999:
            sizes.append(len(rule.tracks))  # type: ignore[attr-defined]
    keep_s = rule.tracks.keep_s  # type: ignore[attr-defined]
    assert max(sizes) <= keep_s * 5 + 2, sizes
    if name == "fall":
        assert len(rule._static) <= FallRule.STATIC_MEMORY_S * 5 + 2  # type: ignore[attr-defined]


def test_track_state_and_stitcher_hard_cap() -> None:
    table: TrackState[int] = TrackState(keep_s=1e9, max_tracks=50)
    stitcher = TrackStitcher(keep_s=1e9, max_tracks=50, link_scale=0.0)
    rng = np.random.default_rng(2)
    for i in range(500):
        tracks = stitcher.update(tracked(one_new_track(i, rng)), float(i))
        table.observe(tracks, float(i), lambda o: 0)
    assert len(table) == 50
    assert len(stitcher) == 50
