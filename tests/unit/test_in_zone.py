"""One definition of "in zone": the analyser's motion gate (which boxes stand in a zone, to
seed regions and decide what is idle) and the rules (who is counted, who intrudes) agree on
every box, edges included."""

from __future__ import annotations

import numpy as np

from gridwatch.geometry import anchors
from gridwatch.ingest.motion import MotionDetector, MotionSettings
from gridwatch.rules.zones import Zone

ZONE = [(0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75)]
MASK = [(0.25, 0.6), (0.4, 0.6), (0.4, 0.75), (0.25, 0.75)]


def test_motion_gate_and_rules_agree_on_every_box_edges_included() -> None:
    w, h = 640, 480
    gate = MotionDetector(MotionSettings(), zones=[ZONE], exclude=[MASK])
    gate.update(np.zeros((h, w), np.uint8))  # learns the frame size
    rng = np.random.default_rng(7)
    # boxes whose feet fall exactly on the zone's edges and corners, and random ones
    feet = [(x * w, y * h) for x in (0.25, 0.5, 0.75) for y in (0.25, 0.5, 0.75)]
    feet += [(float(x), float(y)) for x, y in rng.uniform(0, [w, h], size=(400, 2))]
    boxes = np.array([[x - 10, y - 40, x + 10, y] for x, y in feet], np.float32)
    zone = Zone("z", ZONE)
    pts = anchors(boxes) / np.array([w, h], np.float32)
    expected = zone.contains(pts) & ~Zone("m", MASK).contains(pts)
    assert np.array_equal(gate.anchors_in_zone(boxes), expected)
    assert expected[:9].sum() >= 4  # the edge cases are not all outside
