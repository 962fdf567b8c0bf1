"""Config models of the rules beyond crowding (``cameras[].rules[]`` entries).

They live here, beside the rules they configure, and :mod:`gridwatch.config` puts them in its
``RuleConfig`` union, discriminated on ``type``. Like every config model they forbid unknown
keys and give each field a title and a description, so ``gridwatch config schema`` documents
them. This module must not import :mod:`gridwatch.config` (which imports it).

>>> LineCrossingRuleConfig.model_validate(
...     {"type": "line_crossing", "id": "gate", "line": [[0, .5], [1, .5]],
...      "forbidden_direction": "in"}).forbidden_direction
'in'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from gridwatch.strict import Id as _ID
from gridwatch.strict import Strict

Severity = Literal["info", "warning", "critical"]
TamperCheck = Literal["covered", "frozen", "defocused", "moved"]
_ALL_CHECKS: tuple[TamperCheck, ...] = ("covered", "frozen", "defocused", "moved")


class _Rule(Strict):
    schedule: str | None = Field(
        default=None, title="Schedule", description="Schedule name; none means always active."
    )
    severity: Severity = Field(
        default="warning", title="Severity", description="Severity of the alert."
    )


def _clear_after(default: float, what: str) -> Any:
    return Field(
        default=default,
        ge=0,
        title="Clear after",
        description=f"Seconds {what} before the incident clears (hysteresis).",
    )


def _update_interval() -> Any:
    return Field(
        default=5.0,
        ge=0,
        title="Update interval",
        description="Minimum seconds between 'updated' messages of one incident.",
    )


def _classes(default_text: str) -> Any:
    return Field(
        default=None,
        min_length=1,
        title="Classes",
        description=f"Class names of the model that this rule watches; none: {default_text}.",
    )


class LoiteringRuleConfig(_Rule):
    type: Literal["loitering"] = Field(title="Type", description="Rule type.")
    zone: str = Field(title="Zone", description="Id of a zone of this camera.")
    min_dwell_s: float = Field(
        default=60.0,
        ge=0,
        title="Minimum dwell",
        description="Seconds one tracked person must stay in the zone before an alert.",
    )
    max_gap_s: float = Field(
        default=3.0,
        ge=0,
        title="Maximum gap",
        description="Seconds a person may be unseen (occluded, missed) without the dwell "
        "restarting.",
    )
    clear_after_s: float = _clear_after(10.0, "after the last loiterer left")
    update_interval_s: float = _update_interval()
    classes: list[str] | None = _classes("the model's person classes")


class IntrusionRuleConfig(_Rule):
    type: Literal["intrusion"] = Field(title="Type", description="Rule type.")
    zone: str = Field(title="Zone", description="Id of a zone of this camera.")
    min_duration_s: float = Field(
        default=1.0,
        ge=0,
        title="Minimum duration",
        description="Seconds someone must be inside before an alert (filters a one-frame box).",
    )
    onset_gap_s: float = Field(
        default=1.0,
        ge=0,
        title="Onset gap",
        description="Missed detections shorter than this do not restart the onset timer.",
    )
    clear_after_s: float = _clear_after(10.0, "with the zone empty")
    update_interval_s: float = _update_interval()
    min_travel: float = Field(
        default=0.5,
        ge=0,
        title="Minimum travel",
        description="An object first seen inside counts once it has moved this many of its own "
        "box heights (static look-alikes such as a jacket on the grass never do).",
    )
    classes: list[str] | None = _classes("the model's person classes")


class LineCrossingRuleConfig(_Rule):
    type: Literal["line_crossing"] = Field(title="Type", description="Rule type.")
    id: _ID = Field(
        title="Line id", description="Name of the line; alerts carry it as their zone_id."
    )
    line: tuple[tuple[float, float], tuple[float, float]] = Field(
        title="Line",
        description="Two normalized points [[x1, y1], [x2, y2]]. Walking from the first to the "
        "second on screen, 'in' is crossing from the left-hand side to the right-hand side "
        "(for a line drawn left to right: moving down the picture).",
    )
    forbidden_direction: Literal["in", "out"] | None = Field(
        default=None,
        title="Forbidden direction",
        description="Alert on every crossing this way (give this or max_count).",
    )
    max_count: int | None = Field(
        default=None,
        ge=1,
        title="Maximum count",
        description="Alert when this many crossings happen within window_s (give this or "
        "forbidden_direction).",
    )
    window_s: float = Field(
        default=60.0, gt=0, title="Window", description="Sliding window of max_count, seconds."
    )
    count_direction: Literal["in", "out", "both"] = Field(
        default="both", title="Count direction", description="Which crossings max_count counts."
    )
    band: float = Field(
        default=0.01,
        ge=0,
        le=0.2,
        title="Dead band",
        description="Normalized distance from the line within which a side is not decided "
        "(someone standing on the line does not count crossings).",
    )
    clear_after_s: float = _clear_after(10.0, "without a further crossing (or below max_count)")
    update_interval_s: float = Field(
        default=0.0,
        ge=0,
        title="Update interval",
        description="Minimum seconds between 'updated' messages (each new crossing updates).",
    )
    classes: list[str] | None = _classes("the model's person classes")

    @field_validator("line")
    @classmethod
    def _line_ok(
        cls, v: tuple[tuple[float, float], tuple[float, float]]
    ) -> tuple[tuple[float, float], tuple[float, float]]:
        for i, (x, y) in enumerate(v):
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"point {i} ({x}, {y}) is outside 0..1")
        if v[0] == v[1]:
            raise ValueError("the two points of a line must differ")
        return v

    @model_validator(mode="after")
    def _one_trigger(self) -> LineCrossingRuleConfig:
        if (self.forbidden_direction is None) == (self.max_count is None):
            raise ValueError("give exactly one of forbidden_direction and max_count")
        return self


class VehicleStopRuleConfig(_Rule):
    type: Literal["vehicle_stop"] = Field(title="Type", description="Rule type.")
    zone: str = Field(title="Zone", description="Id of the no-stopping zone.")
    min_dwell_s: float = Field(
        default=60.0,
        ge=0,
        title="Minimum dwell",
        description="Seconds a vehicle must stay in the zone before an alert.",
    )
    max_gap_s: float = Field(
        default=5.0,
        ge=0,
        title="Maximum gap",
        description="Seconds a vehicle may be unseen (a bus passing in front) without the "
        "dwell restarting.",
    )
    clear_after_s: float = _clear_after(10.0, "after the vehicle left")
    update_interval_s: float = _update_interval()
    classes: list[str] | None = _classes("car, bus, truck, motorbike (motorcycle)")


class FallRuleConfig(_Rule):
    type: Literal["fall"] = Field(title="Type", description="Rule type.")
    zone: str | None = Field(
        default=None, title="Zone", description="Id of a zone of this camera; none: anywhere."
    )
    min_duration_s: float = Field(
        default=5.0,
        ge=0,
        title="Minimum duration",
        description="Seconds a person must stay down before an alert.",
    )
    clear_after_s: float = _clear_after(10.0, "with nobody down")
    onset_gap_s: float = Field(
        default=1.5,
        ge=0,
        title="Gap",
        description="Seconds a fallen person may go undetected and still count as down.",
    )
    update_interval_s: float = _update_interval()
    min_upright_s: float = Field(
        default=1.0,
        ge=0,
        title="Minimum upright",
        description="Seconds a track must have been seen upright before a fall counts (a "
        "jacket on the grass never stood up).",
    )
    max_transition_s: float = Field(
        default=5.0,
        ge=0,
        title="Maximum transition",
        description="Longest time between the last upright and the first down observation.",
    )
    upright_aspect: float = Field(
        default=1.2, gt=0, title="Upright aspect", description="Box height/width of upright."
    )
    lying_aspect: float = Field(
        default=1.2,
        gt=0,
        title="Lying aspect",
        description="Box width/height taken as lying, for models without a fall class.",
    )


class TamperRuleConfig(_Rule):
    type: Literal["tamper"] = Field(title="Type", description="Rule type.")
    checks: list[TamperCheck] = Field(
        default_factory=lambda: list(_ALL_CHECKS),
        min_length=1,
        title="Checks",
        description="Which tamper kinds to detect: covered, frozen, defocused, moved.",
    )
    min_duration_s: float = Field(
        default=10.0,
        ge=0,
        title="Minimum duration",
        description="Seconds a tamper condition must last before an alert.",
    )
    clear_after_s: float = _clear_after(5.0, "with the view back to normal")
    learn_s: float = Field(
        default=5.0,
        gt=0,
        title="Learn",
        description="Seconds of normal picture the reference is learned from at start.",
    )
    covered_contrast: float = Field(
        default=0.35,
        gt=0,
        lt=1,
        title="Covered contrast",
        description="Covered when contrast falls below this share of the reference's.",
    )
    covered_flat: float = Field(
        default=0.7,
        gt=0,
        le=1,
        title="Covered flat share",
        description="Covered when at least this share of the view is featureless (a cover "
        "over most of the lens).",
    )
    defocus_ratio: float = Field(
        default=0.6,
        gt=0,
        lt=1,
        title="Defocus ratio",
        description="Defocused when focus (sharpness per contrast) falls below this share of "
        "the reference's.",
    )
    moved_shift: float = Field(
        default=0.02,
        gt=0,
        lt=1,
        title="Moved shift",
        description="Moved when the view shifted by more than this share of its width.",
    )
    moved_correlation: float = Field(
        default=0.4,
        gt=-1,
        lt=1,
        title="Moved correlation",
        description="Moved when the aligned view correlates less than this with the reference.",
    )
    frozen_level: int = Field(
        default=0,
        ge=0,
        le=255,
        title="Frozen level",
        description="Gray-level change a pixel needs beyond this to count as changed.",
    )
    frozen_changed: float = Field(
        default=0.02,
        ge=0,
        lt=1,
        title="Frozen changed share",
        description="Frozen when fewer than this share of pixels changed between frames.",
    )
    rebaseline_after_s: float = Field(
        default=600.0,
        gt=0,
        title="Re-baseline after",
        description="A view moved for this long becomes the new reference (clears the alert).",
    )


class OfflineRuleConfig(_Rule):
    type: Literal["offline"] = Field(title="Type", description="Rule type.")
    offline_after_s: float = Field(
        default=30.0,
        gt=0,
        title="Offline after",
        description="Seconds without a decoded frame before the camera is offline.",
    )
    clear_after_s: float = _clear_after(2.0, "of frames arriving again")


TRACK_RULE_TYPES = frozenset({"loitering", "intrusion", "line_crossing", "vehicle_stop", "fall"})
"""Rules that follow tracks."""
WALKER_RULE_TYPES = frozenset({"intrusion", "line_crossing", "fall"})
"""Track rules that must follow people *walking*: below 5 analysed frames/s ByteTrack confirms
few walkers (40% at 2 fps, 89% at 5). Loitering people and stopped vehicles stand still, which
any rate tracks."""

SINGLETON_RULE_TYPES = frozenset({"tamper", "offline"})


def rule_key_of(rule: dict[str, Any]) -> str | None:
    """The key a rule's incidents are filed under (see each rule's ``rule_key``)."""
    t = rule.get("type")
    if not isinstance(t, str):
        return None
    if t in SINGLETON_RULE_TYPES:
        return t
    if t == "line_crossing":
        return f"{t}/{rule.get('id')}"
    zone = rule.get("zone")
    return f"{t}/{zone if zone is not None else '*'}"


def rule_reference_issues(rules: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """Problems across one camera's rules pydantic cannot see, as (path under the camera,
    message): two rules filing incidents under the same key (their incident ids would collide),
    more than one tamper or offline rule.

    >>> rule_reference_issues([{"type": "fall", "zone": "a"}, {"type": "fall", "zone": "a"}])
    [(('rules', 1, 'zone'), "a second fall rule on zone 'a' (rule 0 is one): merge them")]
    """
    issues: list[tuple[tuple[str | int, ...], str]] = []
    seen: dict[str, int] = {}
    for ri, rule in enumerate(rules if isinstance(rules, Sequence) else []):
        if not isinstance(rule, dict):
            continue
        key = rule_key_of(rule)
        if key is None:
            continue
        if key in seen:
            t = rule["type"]
            if t in SINGLETON_RULE_TYPES:
                issues.append(
                    (
                        ("rules", ri, "type"),
                        f"only one {t} rule per camera (rule {seen[key]} is one)",
                    )
                )
            elif t == "line_crossing":
                issues.append(
                    (
                        ("rules", ri, "id"),
                        f"duplicate line id {rule.get('id')!r} (rule {seen[key]})",
                    )
                )
            else:
                issues.append(
                    (
                        ("rules", ri, "zone"),
                        f"a second {t} rule on zone {rule.get('zone')!r} (rule {seen[key]} is "
                        "one): merge them",
                    )
                )
        else:
            seen[key] = ri
    return issues
