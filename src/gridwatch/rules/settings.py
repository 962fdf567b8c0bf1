"""What the rule config models share, and the checks across one camera's rules.

Each rule module defines its own config model (``CrowdingRuleConfig`` in
:mod:`gridwatch.rules.crowding`, ...) on :class:`RuleSettings`, with the field helpers here;
:mod:`gridwatch.rules.registry` puts them in the ``RuleConfig`` union, discriminated on
``type``, that :mod:`gridwatch.config` uses. Like every config model they forbid unknown keys
and give each field a title and a description, so ``gridwatch config schema`` documents them.
Nothing under :mod:`gridwatch.rules` imports :mod:`gridwatch.config`.

>>> rule_key_of({"type": "line_crossing", "id": "gate"})
'line_crossing/gate'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from gridwatch.config.strict import Strict

Severity = Literal["info", "warning", "critical"]


class RuleSettings(Strict):
    """What every rule's config model has: a schedule and a severity."""

    schedule: str | None = Field(
        default=None, title="Schedule", description="Schedule name; none means always active."
    )
    severity: Severity = Field(
        default="warning", title="Severity", description="Severity of the alert."
    )


def clear_after_field(default: float, what: str) -> Any:
    return Field(
        default=default,
        ge=0,
        title="Clear after",
        description=f"Seconds {what} before the incident clears (hysteresis).",
    )


def min_duration_field(default: float, what: str) -> Any:
    return Field(
        default=default,
        ge=0,
        title="Minimum duration",
        description=f"Seconds {what} must last before an alert is raised.",
    )


def onset_gap_field(default: float) -> Any:
    return Field(
        default=default,
        ge=0,
        title="Onset gap",
        description="Dips shorter than this do not restart the onset timer.",
    )


def count_window_field() -> Any:
    """The crowd count's window, as the crowding rule's (the rules that share its count)."""
    return Field(
        default=1.0,
        ge=0,
        le=60,
        title="Count window",
        description="The count is the median of the zone's counts over this many seconds "
        "(0: the frame's own count), as the crowding rule's.",
    )


def update_interval_field() -> Any:
    return Field(
        default=5.0,
        ge=0,
        title="Update interval",
        description="Minimum seconds between 'updated' messages of one incident.",
    )


def classes_field(default_text: str) -> Any:
    return Field(
        default=None,
        min_length=1,
        title="Classes",
        description=f"Class names of the model that this rule watches; none: {default_text}.",
    )


TRACK_RULE_TYPES = frozenset(
    {"loitering", "intrusion", "line_crossing", "vehicle_stop", "fall", "running"}
)
"""Rules that follow tracks."""
WALKER_RULE_TYPES = frozenset({"intrusion", "line_crossing", "fall", "running"})
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
