"""Ground-plane calibration on known synthetic geometry: a pinhole camera whose projection we
compute ourselves, fitted back from points; distances, areas, speeds; degenerate points refused;
and the ``calibration:`` config section's errors with file:line."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gridwatch.calibration.ground import CalibrationError, GroundPlane, foot_point, speed_of
from gridwatch.calibration.settings import CalibrationConfig
from gridwatch.config import ConfigError, parse_config


def project(ground: list[tuple[float, float]], height: float, tilt_deg: float, hfov_deg: float,
            aspect: float) -> list[tuple[float, float]]:  # fmt: skip
    """Forward pinhole projection of ground points (x right, y ahead, z = 0) into normalized
    image coordinates: an independent implementation of what from_camera inverts."""
    t = math.radians(tilt_deg)
    f = 0.5 / math.tan(math.radians(hfov_deg) / 2)
    out = []
    for x, y in ground:
        d = np.array([x, y, -height])  # camera at (0, 0, height)
        cam_x = d @ np.array([1.0, 0.0, 0.0])
        cam_y = d @ np.array([0.0, -math.sin(t), -math.cos(t)])  # image down
        cam_z = d @ np.array([0.0, math.cos(t), -math.sin(t)])  # optical axis
        out.append((0.5 + f * cam_x / cam_z, 0.5 + aspect * f * cam_y / cam_z))
    return out


GROUND = [(-5.0, 10.0), (5.0, 10.0), (6.0, 30.0), (-6.0, 30.0), (0.0, 18.0), (2.0, 14.0)]


def test_camera_model_inverts_the_projection() -> None:
    image = project(GROUND, 8.0, 30.0, 70.0, 16 / 9)
    plane = GroundPlane.from_camera(8.0, 30.0, 70.0, 16 / 9)
    assert np.allclose(plane.to_ground(image), GROUND, atol=1e-9)


def test_points_fit_recovers_the_camera_and_reports_zero_error() -> None:
    image = project(GROUND, 8.0, 30.0, 70.0, 16 / 9)
    fitted = GroundPlane.from_points(image, GROUND)
    assert fitted.rms_error_m < 1e-6
    model = GroundPlane.from_camera(8.0, 30.0, 70.0, 16 / 9)
    a, b = (0.3, 0.8), (0.7, 0.6)
    assert fitted.distance(a, b) == pytest.approx(model.distance(a, b), rel=1e-6)


def test_distance_area_and_the_horizon() -> None:
    plane = GroundPlane.from_camera(8.0, 30.0, 70.0, 16 / 9)
    image = project([(0.0, 10.0), (4.0, 10.0), (4.0, 13.0), (0.0, 13.0)], 8.0, 30.0, 70.0, 16 / 9)
    assert plane.distance(image[0], image[1]) == pytest.approx(4.0)
    assert plane.distance(image[0], image[2]) == pytest.approx(5.0)
    assert plane.area(image) == pytest.approx(12.0)
    # the picture is 43° high: a camera tilted 15° sees the horizon 6.5° under its top edge
    plane = GroundPlane.from_camera(8.0, 15.0, 70.0, 16 / 9)
    assert np.isnan(plane.to_ground([(0.5, 0.0)])).all()
    assert np.isfinite(plane.to_ground([(0.5, 0.2)])).all()
    with pytest.raises(CalibrationError, match="horizon"):
        plane.distance((0.5, 0.0), (0.5, 0.9))
    with pytest.raises(CalibrationError, match="horizon"):
        plane.area([(0, 0), (1, 0), (1, 1), (0, 1)])


def test_a_mistyped_point_shows_in_the_reprojection_error() -> None:
    image = project(GROUND, 8.0, 30.0, 70.0, 16 / 9)
    ground = list(GROUND)
    ground[4] = (0.0, 21.0)  # paced out 3 m wrong
    fitted = GroundPlane.from_points(image, ground)
    assert fitted.max_error_m > 1.0
    assert int(np.argmax(fitted.errors_m)) == 4


@pytest.mark.parametrize(
    ("image", "ground", "message"),
    [
        ([(0, 0), (1, 0), (1, 1)], [(0, 0), (1, 0), (1, 1)], "at least 4 points"),
        ([(0, 0), (0.5, 0.5), (1, 1), (0, 1)], [(0, 0), (1, 0), (1, 1), (0, 1)], "one line"),
        ([(0, 0), (1, 0), (1, 1), (0, 1)], [(0, 0), (1, 0), (2, 0), (0, 1)], "one line"),
        (
            [(0, 0), (0.2, 0), (0.4, 0), (0.6, 0), (0.8, 0)],
            [(0, 0), (1, 0), (2, 0), (3, 0), (4, 0)],
            "one line",
        ),
        ([(0, 0), (0, 0), (1, 1), (0, 1)], [(0, 0), (1, 0), (1, 1), (0, 1)], "same point"),
        ([(0, 0), (1, 0), (1, 1), (0, 1)], [(0, 0), (1, 0)], "2 ground points"),
    ],
)
def test_degenerate_points_are_refused(
    image: list[tuple[float, float]], ground: list[tuple[float, float]], message: str
) -> None:
    with pytest.raises(CalibrationError, match=message):
        GroundPlane.from_points(image, ground)


def test_foot_point_and_speed() -> None:
    assert foot_point((10, 20, 30, 80)) == (20.0, 80)
    walk = [(t / 10, 1.4 * t / 10, 0.0) for t in range(11)]
    assert speed_of(walk, 0.5) == pytest.approx(1.4)
    jitter = [(t, x + (0.3 if i % 2 else -0.3), 0.0) for i, (t, x, _) in enumerate(walk)]
    assert speed_of(jitter, 0.5) == pytest.approx(1.4, abs=0.4)  # least squares, not endpoints
    assert speed_of(walk[:3], 0.5) is None


POINTS = """
      points:
        - {image: [0.1, 0.9], ground: [0, 0]}
        - {image: [0.9, 0.9], ground: [8, 0]}
        - {image: [0.8, 0.4], ground: [8, 20]}
        - {image: [0.2, 0.4], ground: [0, 20]}
"""


def config(calibration: str, rules: str = "[]") -> str:
    return (
        "grids: [{id: g}]\n"
        "cameras:\n"
        "  - id: c\n"
        "    grid: g\n"
        "    url: rtsp://127.0.0.1/x\n"
        "    zones: [{id: z, polygon: [[0.1, 0.5], [0.9, 0.5], [0.9, 0.9], [0.1, 0.9]]}]\n"
        f"    rules: {rules}\n" + (f"    calibration:{calibration}" if calibration else "")
    )


def test_good_calibration_parses() -> None:
    cam = parse_config(config(POINTS), "cfg.yaml").cameras[0]
    assert cam.calibration is not None
    plane = cam.calibration.plane()
    assert plane.distance((0.1, 0.9), (0.9, 0.9)) == pytest.approx(8.0, abs=1e-6)
    pose = parse_config(config("\n      {height_m: 6, tilt_deg: 35, hfov_deg: 70}\n"), "c.yaml")
    assert pose.cameras[0].calibration is not None
    assert pose.cameras[0].calibration.source == "camera"


@pytest.mark.parametrize(
    ("calibration", "where", "message"),
    [
        (
            POINTS.replace("[0.8, 0.4], ground: [8, 20]", "[0.5, 0.9], ground: [4, 0]"),
            "cfg.yaml:9:7: cameras[0].calibration.points",
            "lie on one line",
        ),
        (
            POINTS.replace("[0.8, 0.4]", "[1.8, 0.4]"),
            "cfg.yaml:12:11: cameras[0].calibration.points[2]",
            "outside 0..1",
        ),
        (
            "\n      {height_m: 6, tilt_deg: 35}\n",
            "cfg.yaml:8:5: cameras[0].calibration",
            "missing hfov_deg",
        ),
        (
            "\n      {height_m: 6, tilt_deg: 95, hfov_deg: 70}\n",
            "cfg.yaml:9:21: cameras[0].calibration.tilt_deg",
            "less than or equal to 90",
        ),
        (
            POINTS + "      height_m: 5\n",
            "cfg.yaml:8:5: cameras[0].calibration",
            "not both",
        ),
    ],
)
def test_bad_calibration_is_reported_with_file_line_and_field(
    calibration: str, where: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(config(calibration), "cfg.yaml")
    text = str(info.value)
    assert where in text, text
    assert message in text, text


@pytest.mark.parametrize("rule", ["{type: running}", "{type: density, zone: z, max_per_m2: 2}"])
def test_metre_rules_refuse_a_camera_without_calibration(rule: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(config("", f"[{rule}]"), "cfg.yaml")
    text = str(info.value)
    assert "cfg.yaml:7:" in text, text
    assert "rules[0].type" in text, text
    assert "needs a calibration" in text
    parse_config(config(POINTS, f"[{rule}]"), "cfg.yaml")  # with one: fine


def test_calibration_model_round_trips() -> None:
    cal = parse_config(config(POINTS), "cfg.yaml").cameras[0].calibration
    assert cal is not None
    again = CalibrationConfig.model_validate(cal.model_dump(mode="json", exclude_defaults=True))
    assert again == cal
