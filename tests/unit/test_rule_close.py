"""A camera that stops being analysed closes its open incidents (``CameraRules.close_all``):
every raised incident gets its ``cleared`` with the given reason and the same incident id,
pending ones end silently, and closing twice emits nothing more."""

from __future__ import annotations

import textwrap

from gridwatch.config import parse_config
from gridwatch.model import Detections, IncidentEvent, IncidentState
from gridwatch.rules.base import CAMERA_STOPPED, FrameSample
from gridwatch.rules.engine import CameraRules
from gridwatch.rules.registry import RULES
from gridwatch.rules.tamper import TamperRule, TamperRuleConfig

CONFIG = textwrap.dedent(
    """\
    grids: [{id: g1}]
    cameras:
      - id: cam-1
        grid: g1
        url: rtsp://127.0.0.1:8554/gate
        analysis_fps: 5
        zones:
          - {id: lane, polygon: [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]}
          - {id: roof, polygon: [[0, 0], [1, 0], [1, 0.1], [0, 0.1]]}
        rules:
          - {type: crowding, zone: lane, min_count: 2, min_duration_s: 0, clear_after_s: 60}
          - {type: intrusion, zone: lane, min_duration_s: 0, min_travel: 0, clear_after_s: 60}
          - {type: crowding, zone: roof, min_count: 1, min_duration_s: 0}
          - {type: loitering, zone: lane, min_dwell_s: 600}
          - {type: offline, offline_after_s: 1, clear_after_s: 60}
          - {type: tamper, checks: [covered]}
    """
)


def people(n: int) -> Detections:
    """``n`` tracked people standing in the lane (the lower half of a 1000×1000 frame)."""
    xyxy = [(100 + 100 * i, 600, 160 + 100 * i, 900) for i in range(n)]
    return Detections.from_arrays(
        xyxy=xyxy,
        confidence=[0.9] * n,
        class_id=[0] * n,
        tracker_id=list(range(1, n + 1)),
        image_size=(1000, 1000),
    )


def rules() -> CameraRules:
    c = parse_config(CONFIG, "cfg.yaml")
    return CameraRules(c.cameras[0], c, person_classes={0}, class_names={0: "person"})


def raise_some(r: CameraRules) -> list[IncidentEvent]:
    events: list[IncidentEvent] = []
    for t in range(3):
        events += r.update(people(3), 100.0 + t)
    # no frame for 5 s: the offline rule raises (a frame rule, closed as well)
    events += r.update_frame(FrameSample(ts=105.0, gray=None, last_frame_ts=100.0,
                                         last_packet_ts=100.0))  # fmt: skip
    return events


def test_close_all_clears_every_raised_incident_with_the_reason() -> None:
    r = rules()
    raised = [e for e in raise_some(r) if e.state is IncidentState.RAISED]
    assert sorted(e.rule_key for e in raised) == ["crowding/lane", "intrusion/lane", "offline"]

    cleared = r.close_all(110.0)
    assert sorted(e.rule_key for e in cleared) == ["crowding/lane", "intrusion/lane", "offline"]
    assert {e.state for e in cleared} == {IncidentState.CLEARED}
    assert {e.reason for e in cleared} == {CAMERA_STOPPED}
    assert {e.observed_at for e in cleared} == {110.0}
    by_key = {e.rule_key: e for e in raised}
    for e in cleared:
        assert e.incident_id("cam-1") == by_key[e.rule_key].incident_id("cam-1")
        assert e.sequence > by_key[e.rule_key].sequence  # a new Nats-Msg-Id, not a duplicate
    assert r.close_all(111.0) == []  # nothing is open any more


def test_close_all_with_another_reason_and_nothing_open() -> None:
    r = rules()
    assert r.close_all(1.0) == []  # nothing raised yet
    raise_some(r)
    assert {e.reason for e in r.close_all(120.0, reason="lease_lost")} == {"lease_lost"}


def test_a_closed_rule_starts_a_new_incident_afterwards() -> None:
    r = rules()
    first = [e for e in r.update(people(3), 10.0) if e.rule_key == "crowding/lane"]
    r.close_all(11.0)
    again = [e for e in r.update(people(3), 12.0) if e.rule_key == "crowding/lane"]
    assert [e.state for e in again] == [IncidentState.RAISED]
    assert again[0].incident_id("cam-1") != first[0].incident_id("cam-1")


def test_tamper_closes_each_open_kind() -> None:
    """Tamper keeps one Episode per kind; ``close`` clears each raised one, drops the rest."""
    rule = TamperRule(TamperRuleConfig(type="tamper", checks=["covered", "frozen"]))
    rule._episodes["covered"].step(1.0, True)  # min_duration_s 10: still pending
    rule._episodes["covered"].step(11.0, True)  # raised
    rule._episodes["frozen"].step(11.0, True)  # pending
    events = rule.close(12.0, CAMERA_STOPPED)
    assert [(e.rule_key, e.state, e.reason) for e in events] == [
        ("tamper/covered", IncidentState.CLEARED, CAMERA_STOPPED)
    ]
    assert rule.close(13.0, CAMERA_STOPPED) == []


def test_every_rule_type_offers_close() -> None:
    for cls in RULES.values():
        assert callable(getattr(cls, "close", None)), cls
