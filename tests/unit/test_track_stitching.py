"""Tracks are stitched once per camera: CameraRules' one TrackStitcher maps the tracker's ids to
stable ids (linking as long as the longest-keeping rule), and each rule keeps only its own state
per stable id, with its own expiry; the fall rule's link veto keeps its effect."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import pytest

from gridwatch.config import parse_config
from gridwatch.model import Detections, IncidentEvent, Track
from gridwatch.rules.crowding import CrowdingRule
from gridwatch.rules.engine import CameraRules
from gridwatch.rules.fall import FallRule, FallRuleConfig
from gridwatch.rules.line_crossing import LineCrossingRule, LineCrossingRuleConfig
from gridwatch.tracking.tracks import TrackRule, TrackState, TrackStitcher, tracked

SIZE = (400, 400)
Box = tuple[float, float, float, float]
Obj = tuple[int, Box, int]  # tracker id, xyxy px, class


def dets(objs: Sequence[Obj]) -> Detections:
    return Detections.from_arrays(
        xyxy=[b for _, b, _ in objs],
        confidence=[0.9] * len(objs),
        class_id=[c for _, _, c in objs],
        tracker_id=[t for t, _, _ in objs],
        image_size=SIZE,
    )


def feet(x: float, y: float, w: float = 10.0, h: float = 40.0) -> Box:
    return (x - w / 2, y - h, x + w / 2, y)


def ids(tracks: Sequence[Track]) -> list[tuple[int, int | None, bool]]:
    return [(t.track_id, t.raw_track_id, t.linked) for t in tracks]


# -- the stitcher ---------------------------------------------------------------------------


def test_a_new_id_near_a_lost_track_takes_over_its_stable_id_once() -> None:
    s = TrackStitcher(keep_s=3.0)
    assert ids(s.update(tracked(dets([(1, feet(100, 200), 0)])), 0.0)) == [(1, 1, False)]
    assert ids(s.update(tracked(dets([])), 1.0)) == []
    assert ids(s.update(tracked(dets([(5, feet(120, 205), 0)])), 2.0)) == [(1, 5, True)]
    assert s.linked == {1}
    assert ids(s.update(tracked(dets([(5, feet(121, 205), 0)])), 3.0)) == [(1, 5, False)]
    assert s.linked == frozenset()


@pytest.mark.parametrize(
    ("where", "when", "expected"),
    [
        (feet(100, 250), 2.0, [(7, 7, False)]),  # 50 px away: beyond one box height (40)
        (feet(100, 200), 3.5, [(7, 7, False)]),  # lost 3.5 s ago: beyond keep_s
        (feet(100, 200), 3.0, [(1, 7, True)]),  # exactly keep_s: still linked
    ],
)
def test_links_are_limited_in_reach_and_time(
    where: Box, when: float, expected: list[tuple[int, int, bool]]
) -> None:
    s = TrackStitcher(keep_s=3.0)
    s.update(tracked(dets([(1, feet(100, 200), 0)])), 0.0)
    assert ids(s.update(tracked(dets([(7, where, 0)])), when)) == expected


def test_a_track_still_seen_is_never_taken_over_and_the_nearest_new_id_wins() -> None:
    s = TrackStitcher(keep_s=3.0)
    s.update(tracked(dets([(1, feet(100, 200), 0), (2, feet(300, 200), 0)])), 0.0)
    out = s.update(
        tracked(dets([(2, feet(300, 200), 0), (8, feet(130, 200), 0), (9, feet(105, 200), 0)])),
        1.0,
    )
    assert ids(out) == [(2, 2, False), (8, 8, False), (1, 9, True)]


def test_classes_link_only_within_a_rules_classes() -> None:
    # people {0} for loitering, vehicles {2, 7} for vehicle_stop
    s = TrackStitcher(keep_s=3.0, class_groups=[{0}, {2, 7}])
    s.update(tracked(dets([(1, feet(100, 200), 0), (2, feet(300, 200, 40, 40), 2)])), 0.0)
    out = s.update(
        tracked(dets([(3, feet(100, 200), 2), (4, feet(300, 200, 40, 40), 7)])),
        1.0,
    )
    assert ids(out) == [(3, 3, False), (2, 4, True)]  # a car never continues a person
    anything = TrackStitcher(keep_s=3.0, class_groups=[{0}, None])
    anything.update(tracked(dets([(1, feet(100, 200), 0)])), 0.0)
    assert ids(anything.update(tracked(dets([(3, feet(100, 200), 2)])), 1.0)) == [(1, 3, True)]


def test_a_restarted_tracker_never_reuses_a_stable_id_in_use() -> None:
    s = TrackStitcher(keep_s=5.0)
    s.update(tracked(dets([(1, feet(100, 200), 0)])), 0.0)
    s.update(tracked(dets([(4, feet(100, 200), 0)])), 1.0)  # stable 1 now follows raw 4
    out = s.update(tracked(dets([(4, feet(100, 200), 0), (1, feet(300, 100), 0)])), 2.0)
    assert ids(out) == [(1, 4, False), (2, 1, False)]


def test_track_state_expires_on_its_own_window() -> None:
    state: TrackState[str] = TrackState(keep_s=2.0)
    track = tracked(dets([(1, feet(100, 200), 0)]))
    assert [s for _, s in state.observe(track, 0.0, lambda t: "a")] == ["a"]
    assert [s for _, s in state.observe(track, 2.0, lambda t: "b")] == ["a"]  # = keep_s: kept
    assert [s for _, s in state.observe(track, 4.5, lambda t: "c")] == ["c"]  # > keep_s: afresh
    assert state.renew(1, "d") == "d"
    assert state.get(1) == "d"
    state.clear()
    assert len(state) == 0


# -- one stitcher per camera ------------------------------------------------------------------

HEAD = textwrap.dedent(
    """\
    grids: [{id: g1}]
    cameras:
      - id: cam-1
        grid: g1
        url: rtsp://127.0.0.1:8554/gate
        analysis_fps: 5
        zones:
          - {id: lane, polygon: [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]}
        rules:
    """
)
INTRUSION = "      - {type: intrusion, zone: lane, min_duration_s: 0, clear_after_s: 60}\n"
LINE = (
    "      - {type: line_crossing, id: gate, line: [[0, 0.5], [1, 0.5]],"
    " forbidden_direction: in, clear_after_s: 60}\n"
)
NAMES = {0: "Normal", 1: "Fall"}


def camera(rules: str, names: dict[int, str] = NAMES) -> CameraRules:
    c = parse_config(HEAD + rules, "cfg.yaml")
    return CameraRules(c.cameras[0], c, person_classes={0, 1}, class_names=names)


def run(rules: CameraRules, frames: Sequence[Sequence[Obj]]) -> list[tuple[int, str, list[int]]]:
    return [
        (t, f"{e.rule_key} {e.state.value}", e.details.get("tracks", []))
        for t, f in enumerate(frames)
        for e in rules.update(dets(f), float(t))
    ]


def test_the_camera_links_as_long_as_its_longest_keeping_rule() -> None:
    r = camera(INTRUSION + LINE + "      - {type: loitering, zone: lane, max_gap_s: 8}\n")
    assert r.stitcher is not None
    assert r.stitcher.keep_s == 8.0
    assert camera(INTRUSION + LINE).stitcher.keep_s == 5.0  # type: ignore[union-attr]
    crowd = camera("      - {type: crowding, zone: lane, min_count: 1}\n")
    assert crowd.stitcher is None  # no track rule: nothing to stitch
    assert all(isinstance(x, TrackRule) for x in r.rules)
    assert isinstance(crowd.rules[0], CrowdingRule)
    assert not isinstance(crowd.rules[0], TrackRule)


def lost_and_found(missed: int) -> list[list[Obj]]:
    """A person stands above the line (outside the lane) for 3 frames (0-2 s), is missed on
    ``missed`` frames and comes back under a new id just below the line (inside), 35 px from
    where they were lost."""
    above, below = feet(100, 180), feet(100, 215)
    return [[(1, above, 0)]] * 3 + [[]] * missed + [[(2, below, 0)]] * 3


@pytest.mark.parametrize(
    ("missed", "expected"),
    [
        # unseen 2 s (last seen at 2, back at 4): both rules carry the person's state on
        (1, [(4, "intrusion/lane raised", [1]), (4, "line_crossing/gate raised", [])]),
        # unseen 4 s: within intrusion's 5 s, beyond the line's 3 s: the camera keeps the id,
        # the line rule starts it afresh (no side yet, no crossing), intrusion carries on
        (3, [(6, "intrusion/lane raised", [1])]),
        # unseen 6 s: beyond every window: someone new, who has not walked in (yet)
        (5, []),
    ],
)
def test_a_rule_whose_window_is_shorter_than_the_gap_starts_afresh(
    missed: int, expected: list[tuple[int, str, list[int]]]
) -> None:
    frames = lost_and_found(missed)
    assert run(camera(INTRUSION + LINE), frames) == expected
    # each rule on its own (stitching with its own window) gives the same
    line = LineCrossingRule(
        "gate",
        ((0.0, 0.5), (1.0, 0.5)),
        LineCrossingRuleConfig(
            type="line_crossing",
            id="gate",
            line=((0, 0.5), (1, 0.5)),
            forbidden_direction="in",
            clear_after_s=60,
        ),
    )
    alone = [(t, e.rule_key) for t, f in enumerate(frames) for e in line.update(dets(f), float(t))]
    assert alone == [(t, k.split()[0]) for t, k, _ in expected if k.startswith("line")]


def test_rules_in_a_camera_do_no_stitching_of_their_own() -> None:
    r = camera(INTRUSION + LINE + "      - {type: fall}\n")
    run(r, lost_and_found(1))
    for rule in r.rules:
        assert len(rule._solo) == 0  # type: ignore[attr-defined]
        assert [tid for tid, *_ in rule.tracks.items()] == [1]  # type: ignore[attr-defined]


# -- the fall rule's veto ----------------------------------------------------------------------

STAND = (100.0, 100.0, 130.0, 190.0)  # 30×90 upright, feet at (115, 190)
JACKET = (100.0, 170.0, 170.0, 195.0)  # lying "Fall" box, feet at (135, 195): 21 px away


def jacket_then_walker(jacket_first: bool) -> list[list[Obj]]:
    """A jacket on the grass (id 5, 0-2 s), then unseen; a walker stands next to it (8-11 s),
    after the jacket's track has expired everywhere, and is lost; the jacket is found again
    under a new id (6, from 12 s) where the walker was lost."""
    frames: list[list[Obj]] = [[(5, JACKET, 1)] if jacket_first else []] * 3 + [[]] * 5
    frames += [[(1, STAND, 0)]] * 4
    return frames + [[(6, JACKET, 1)]] * 10


def fall_alone() -> FallRule:
    cfg = FallRuleConfig(type="fall", min_duration_s=3, clear_after_s=2, min_upright_s=1)
    return FallRule(None, cfg, fall_classes={1})


@pytest.mark.parametrize("where", ["alone", "camera"])
def test_a_jacket_linked_to_a_lost_walker_does_not_inherit_their_upright_past(
    where: str,
) -> None:
    def events(frames: list[list[Obj]]) -> list[IncidentEvent]:
        if where == "alone":
            rule = fall_alone()
            return [e for t, f in enumerate(frames) for e in rule.update(dets(f), float(t))]
        r = camera(
            INTRUSION + "      - {type: fall, min_duration_s: 3, clear_after_s: 2}\n"
        )  # intrusion: the camera links for 5 s, longer than the fall rule's 3
        return [e for t, f in enumerate(frames) for e in r.update(dets(f), float(t))]

    # the jacket's new id takes over the walker's stable id ...
    stitcher = TrackStitcher(keep_s=5.0)
    for t, f in enumerate(jacket_then_walker(True)[:13]):
        out = stitcher.update(tracked(dets(f)), float(t))
    assert ids(out) == [(1, 6, True)]
    # ... and, seen lying there before anyone stood nearby, starts afresh: never a fall
    assert [e for e in events(jacket_then_walker(True)) if e.type == "fall"] == []
    # without that memory of the jacket, the same boxes are someone who fell where they stood
    raised = [e for e in events(jacket_then_walker(False)) if e.type == "fall"]
    assert [(e.state.value, e.observed_at, e.details["tracks"]) for e in raised] == [
        ("raised", 15.0, [1])
    ]
