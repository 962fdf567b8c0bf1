"""Offline: no frames for offline_after_s; silent camera (no packets) vs stuck pipeline
(packets, no frames); recovered when frames return."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from gridwatch.rules.base import FrameSample
from gridwatch.rules.offline import OfflineRule, OfflineRuleConfig

Tick = tuple[bool, bool]  # (a frame arrived this second, a packet arrived this second)
F, P, N = (True, True), (False, True), (False, False)  # frame, packets only, nothing


def run(ticks: Sequence[Tick], after: float = 5, clear: float = 2) -> list[tuple[int, str, str]]:
    rule = OfflineRule(
        OfflineRuleConfig(type="offline", offline_after_s=after, clear_after_s=clear)
    )
    last_frame: float | None = None
    last_packet: float | None = None
    out = []
    for t, (frame, packet) in enumerate(ticks):
        if frame:
            last_frame = float(t)
        if packet:
            last_packet = float(t)
        sample = FrameSample(float(t), None, last_frame, last_packet)
        out += [(t, e.state.value, str(e.details["kind"])) for e in rule.update_frame(sample)]
    return out


@pytest.mark.parametrize(
    ("ticks", "expected"),
    [
        ([F] * 20, []),
        # silent: last frame at 2 s, nothing after; offline at 2 + 5 = 7; frames back at 14,
        # cleared 2 s after the last offline tick (13)
        ([F] * 3 + [N] * 11 + [F] * 6, [(7, "raised", "silent"), (15, "cleared", "silent")]),
        # stuck: packets keep coming, frames don't
        ([F] * 3 + [P] * 11 + [F] * 6, [(7, "raised", "stuck"), (15, "cleared", "stuck")]),
        # stuck, then the packets stop too: updated to silent
        (
            [F] * 3 + [P] * 7 + [N] * 10,
            [(7, "raised", "stuck"), (14, "updated", "silent")],
        ),
        # a dropout shorter than offline_after_s
        ([F] * 3 + [N] * 4 + [F] * 10, []),
        # a camera that never sends a frame is offline offline_after_s after we started
        ([N] * 8, [(5, "raised", "silent")]),
    ],
)
def test_offline_table(ticks: list[Tick], expected: list[tuple[int, str, str]]) -> None:
    assert run(ticks) == expected


def test_started_at_is_when_frames_stopped_and_health() -> None:
    rule = OfflineRule(OfflineRuleConfig(type="offline", offline_after_s=5))
    assert rule.update_frame(FrameSample(100.0, None, 100.0, 100.0)) == []
    assert rule.health() == {"online": True, "offline": None}
    (raised,) = rule.update_frame(FrameSample(106.0, None, 100.0, 105.5))
    assert raised.started_at == 100.0
    assert raised.type == "offline"
    assert raised.rule_key == "offline"
    assert raised.details["seconds_since_frame"] == 6.0
    assert raised.details["seconds_since_packet"] == 0.5
    assert rule.health() == {"online": False, "offline": "stuck"}
    (cleared,) = rule.update_frame(FrameSample(110.0, None, 109.9, 109.9))
    assert cleared.reason == "recovered"
    assert cleared.incident_id("cam") == raised.incident_id("cam")
    assert rule.health() == {"online": True, "offline": None}


def test_params() -> None:
    with pytest.raises(ValueError, match="offline_after_s"):
        OfflineRuleConfig(type="offline", offline_after_s=0)
