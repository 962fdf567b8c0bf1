"""The ``cases:`` section of the config: deadlines per severity, escalation, retention.

Deadlines are measured from the moment the case opened (the alert was raised), so a case that
was acknowledged late still has to be on scene on time, and a restart of the case service
does not move any deadline.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from gridwatch.config.strict import Strict as _Strict

Severity = Literal["info", "warning", "critical"]
EscalationTarget = Literal["grid_leader", "command_centre"]


class DeadlineConfig(_Strict):
    acknowledge_s: float = Field(
        default=60.0,
        gt=0,
        title="Acknowledge within",
        description="Seconds from the alert to an acknowledgement before the case escalates.",
    )
    on_scene_s: float | None = Field(
        default=900.0,
        gt=0,
        title="On scene within",
        description="Seconds from the alert until someone reports on scene; none: no deadline.",
    )
    escalation_interval_s: float = Field(
        default=120.0,
        gt=0,
        title="Escalation interval",
        description="After an escalation, seconds before the next level when the deadline is "
        "still missed.",
    )

    @model_validator(mode="after")
    def _order(self) -> DeadlineConfig:
        if self.on_scene_s is not None and self.on_scene_s < self.acknowledge_s:
            raise ValueError("on_scene_s cannot be shorter than acknowledge_s")
        return self


def _default_deadlines() -> dict[Severity, DeadlineConfig]:
    return {
        "info": DeadlineConfig(acknowledge_s=300.0, on_scene_s=None, escalation_interval_s=600.0),
        "warning": DeadlineConfig(acknowledge_s=60.0, on_scene_s=900.0),
        "critical": DeadlineConfig(
            acknowledge_s=30.0, on_scene_s=600.0, escalation_interval_s=60.0
        ),
    }


def _default_chain() -> list[EscalationTarget]:
    return ["grid_leader", "command_centre"]


class CasesConfig(_Strict):
    retention_days: float = Field(
        default=180.0,
        gt=0,
        title="Retention",
        description="Days case events (stream GW_CASES) and case states are kept.",
    )
    deadlines: dict[Severity, DeadlineConfig] = Field(
        default_factory=_default_deadlines,
        title="Deadlines",
        description="Per alert severity; a severity left out uses the 'warning' deadlines.",
    )
    escalation: list[EscalationTarget] = Field(
        default_factory=_default_chain,
        min_length=1,
        title="Escalation chain",
        description="Who a missed deadline escalates to, level by level.",
    )
    check_interval_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        title="Check interval",
        description="How often the case service looks for missed deadlines.",
    )

    def deadline(self, severity: str) -> DeadlineConfig:
        for key, value in self.deadlines.items():
            if key == severity:
                return value
        return self.deadlines.get("warning") or DeadlineConfig()
