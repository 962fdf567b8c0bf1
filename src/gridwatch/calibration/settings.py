"""``cameras[].calibration``: how a camera's picture maps to metres on the ground.

Either four or more ``points`` (an image point, normalized like a zone's polygon, and where it
lies on the ground in metres) or the camera's ``height_m``, ``tilt_deg`` and ``hfov_deg``
(:mod:`gridwatch.calibration.ground`). Validated when the config loads, like a zone: points that
cannot fix a plane are refused with the file, line and field of the calibration.

>>> cal = CalibrationConfig.model_validate(
...     {"points": [{"image": [0, 0.5], "ground": [0, 20]}, {"image": [1, 0.5], "ground": [10, 20]},
...                 {"image": [1, 1], "ground": [10, 0]}, {"image": [0, 1], "ground": [0, 0]}]})
>>> round(cal.plane().area([(0, 0.5), (1, 0.5), (1, 1), (0, 1)]), 1)
200.0
>>> CalibrationConfig.model_validate({"height_m": 6, "tilt_deg": 30, "hfov_deg": 70}).source
'camera'
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from gridwatch.calibration.ground import CalibrationError, GroundPlane
from gridwatch.config.strict import Strict

__all__ = ["METRE_RULE_TYPES", "CalibrationConfig", "CalibrationPoint", "calibration_issues"]

METRE_RULE_TYPES = frozenset({"running", "density"})
"""Rule types that measure in metres and so need the camera's calibration."""


class CalibrationPoint(Strict):
    image: tuple[float, float] = Field(
        title="Image point",
        description="Normalized (x, y), 0..1, in image coordinates (y down), like a zone's.",
    )
    ground: tuple[float, float] = Field(
        title="Ground point",
        description="Where that point lies on the ground, in metres (any origin and axes).",
    )

    @model_validator(mode="after")
    def _in_unit_square(self) -> CalibrationPoint:
        x, y = self.image
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(f"image point ({x}, {y}) is outside 0..1")
        return self


class CalibrationConfig(Strict):
    """Ground-plane calibration of one camera: ``points`` or the camera's pose, not both."""

    points: list[CalibrationPoint] | None = Field(
        default=None,
        title="Points",
        description="Four or more image points with their ground positions in metres, spread "
        "over the area the rules watch (no three of four in a row).",
    )
    height_m: float | None = Field(
        default=None,
        gt=0,
        title="Height",
        description="Height of the lens above the ground, metres (with tilt_deg and hfov_deg).",
    )
    tilt_deg: float | None = Field(
        default=None,
        gt=0,
        le=90,
        title="Tilt",
        description="Degrees the camera looks down from the horizontal (90: straight down).",
    )
    hfov_deg: float | None = Field(
        default=None,
        gt=0,
        lt=180,
        title="Horizontal field of view",
        description="Degrees the picture spans from left to right edge.",
    )
    aspect: float = Field(
        default=16 / 9,
        gt=0,
        title="Aspect ratio",
        description="Picture width / height, for the camera model (16:9 unless set).",
    )

    @field_validator("points")
    @classmethod
    def _fix_a_plane(cls, v: list[CalibrationPoint] | None) -> list[CalibrationPoint] | None:
        if v is not None:
            try:
                GroundPlane.from_points([p.image for p in v], [p.ground for p in v])
            except CalibrationError as exc:
                raise ValueError(str(exc)) from None
        return v

    @model_validator(mode="after")
    def _one_way(self) -> CalibrationConfig:
        pose = {"height_m": self.height_m, "tilt_deg": self.tilt_deg, "hfov_deg": self.hfov_deg}
        given = [k for k, v in pose.items() if v is not None]
        if self.points is not None and given:
            raise ValueError(f"give points or the camera's pose ({', '.join(given)}), not both")
        if self.points is None and len(given) != 3:
            missing = [k for k in pose if k not in given]
            raise ValueError(
                "give at least 4 points, or height_m, tilt_deg and hfov_deg "
                f"(missing {', '.join(missing)})"
            )
        if self.points is None:
            try:
                self.plane()
            except CalibrationError as exc:
                raise ValueError(str(exc)) from None
        return self

    @property
    def source(self) -> str:
        return "points" if self.points is not None else "camera"

    def plane(self) -> GroundPlane:
        """The ground plane this calibration describes (fitted each call: cache it)."""
        if self.points is not None:
            return GroundPlane.from_points(
                [p.image for p in self.points], [p.ground for p in self.points]
            )
        assert self.height_m
        assert self.tilt_deg
        assert self.hfov_deg
        return GroundPlane.from_camera(self.height_m, self.tilt_deg, self.hfov_deg, self.aspect)


def calibration_issues(cam: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """Problems of a raw camera mapping pydantic cannot see, as (path under the camera,
    message): a rule that measures in metres on a camera without ``calibration``, a density
    zone whose ground area is unbounded (it reaches the horizon).

    >>> calibration_issues({"rules": [{"type": "running"}]})
    [(('rules', 0, 'type'), 'running measures in metres: the camera needs a calibration (gridwatch camera calibrate ID --point "u,v=x,y" ...)')]
    """  # noqa: E501
    issues: list[tuple[tuple[str | int, ...], str]] = []
    rules = cam.get("rules") if isinstance(cam, dict) else None
    has_cal = isinstance(cam, dict) and cam.get("calibration") is not None
    for ri, rule in enumerate(rules if isinstance(rules, list) else []):
        if not isinstance(rule, dict) or rule.get("type") not in METRE_RULE_TYPES:
            continue
        if not has_cal:
            issues.append(
                (
                    ("rules", ri, "type"),
                    f"{rule['type']} measures in metres: the camera needs a calibration "
                    '(gridwatch camera calibrate ID --point "u,v=x,y" ...)',
                )
            )
    return issues
