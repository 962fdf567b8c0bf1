from __future__ import annotations

import numpy as np
import pytest

from gridwatch.model import Detections
from gridwatch.rules.zones import Zone

TRIANGLE = Zone("t", [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)])
SQUARE = Zone("apron", [(0.05, 0.40), (0.95, 0.40), (0.95, 0.98), (0.05, 0.98)])
CONCAVE = Zone("u", [(0, 0), (0.3, 0), (0.3, 0.7), (0.7, 0.7), (0.7, 0), (1, 0), (1, 1), (0, 1)])


@pytest.mark.parametrize(
    ("zone", "point", "inside"),
    [
        (TRIANGLE, (0.2, 0.2), True),
        (TRIANGLE, (0.6, 0.6), False),
        (TRIANGLE, (0.5, 0.5), True),  # on the hypotenuse: edge counts as inside
        (TRIANGLE, (0.0, 0.0), True),  # vertex
        (SQUARE, (0.5, 0.399), False),
        (SQUARE, (0.5, 0.40), True),
        (SQUARE, (0.96, 0.5), False),
        (CONCAVE, (0.5, 0.3), False),  # in the notch of the U
        (CONCAVE, (0.5, 0.8), True),
        (CONCAVE, (0.15, 0.3), True),
    ],
)
def test_point_in_zone(zone: Zone, point: tuple[float, float], inside: bool) -> None:
    assert zone.contains(np.array([point], dtype=np.float32)).tolist() == [inside]


def test_bottom_centre_decides_membership() -> None:
    # a tall box whose top is in the zone but whose feet are not: not inside
    d = Detections.from_arrays(
        xyxy=[[100, 250, 140, 220 + 0], [100, 100, 140, 300]],
        confidence=[0.9, 0.9],
        class_id=[0, 0],
        image_size=(768, 576),
    )
    anchors = d.anchors_normalized()
    assert SQUARE.contains(anchors).tolist() == [False, True]


def test_empty_input() -> None:
    assert SQUARE.contains(np.zeros((0, 2), np.float32)).tolist() == []


def test_zone_needs_three_points() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        Zone("x", [(0, 0), (1, 1)])


def test_pixel_polygon() -> None:
    assert SQUARE.pixel_polygon(100, 100).tolist()[0] == [5, 40]
