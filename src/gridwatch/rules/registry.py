"""The rule types: each rule module owns its config model and how to build itself from it.

A rule class names its config model (``Config``, a pydantic model discriminated on ``type``)
and builds itself with ``from_config(cfg, ctx)`` (:class:`~gridwatch.rules.base.RuleContext`:
zones, schedule, class ids and names). This registry lists the classes once; from it come

* ``RuleConfig``, the discriminated union of every rule's config model that
  :mod:`gridwatch.config` uses for ``cameras[].rules[]`` (config imports it from here; nothing
  under :mod:`gridwatch.rules` imports the config loading);
* :data:`RULE_TYPES`, the type names, in the order the console lists them;
* :func:`build_rule`, the rule of one config entry.

Adding a rule type is one module (its config model, ``from_config``, ``update`` or
``update_frame``, ``close``) and one line in :data:`RULES`.

>>> RULE_TYPES[:3]
('crowding', 'loitering', 'intrusion')
>>> from pydantic import TypeAdapter
>>> TypeAdapter(RuleConfig).validate_python({"type": "offline"}).offline_after_s
30.0
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Annotated, Any, Protocol, Union

from pydantic import BaseModel, Field

from gridwatch.rules.abandoned_object import AbandonedObjectRule, AbandonedObjectRuleConfig
from gridwatch.rules.base import DetectionRule, FrameRule, RuleBuildError, RuleContext
from gridwatch.rules.crowding import CrowdingRule, CrowdingRuleConfig
from gridwatch.rules.density import DensityRule, DensityRuleConfig
from gridwatch.rules.fall import FallRule, FallRuleConfig
from gridwatch.rules.gathering import GatheringRule, GatheringRuleConfig
from gridwatch.rules.intrusion import IntrusionRule, IntrusionRuleConfig
from gridwatch.rules.line_crossing import LineCrossingRule, LineCrossingRuleConfig
from gridwatch.rules.loitering import LoiteringRule, LoiteringRuleConfig
from gridwatch.rules.offline import OfflineRule, OfflineRuleConfig
from gridwatch.rules.running import RunningRule, RunningRuleConfig
from gridwatch.rules.tamper import TamperRule, TamperRuleConfig
from gridwatch.rules.vehicle_stop import VehicleStopRule, VehicleStopRuleConfig

__all__ = [
    "RULES",
    "RULE_TYPES",
    "AbandonedObjectRuleConfig",
    "CrowdingRuleConfig",
    "DensityRuleConfig",
    "FallRuleConfig",
    "GatheringRuleConfig",
    "IntrusionRuleConfig",
    "LineCrossingRuleConfig",
    "LoiteringRuleConfig",
    "OfflineRuleConfig",
    "RuleConfig",
    "RunningRuleConfig",
    "TamperRuleConfig",
    "VehicleStopRuleConfig",
    "build_rule",
]


class RuleClass(Protocol):
    """What the registry asks of a rule class."""

    type: str
    Config: builtins.type[BaseModel]

    @classmethod
    def from_config(cls, cfg: Any, ctx: RuleContext) -> DetectionRule | FrameRule: ...


RULES: dict[str, RuleClass] = {
    cls.type: cls  # type: ignore[misc]
    for cls in (
        CrowdingRule,
        LoiteringRule,
        IntrusionRule,
        LineCrossingRule,
        VehicleStopRule,
        FallRule,
        TamperRule,
        OfflineRule,
        RunningRule,
        GatheringRule,
        DensityRule,
        AbandonedObjectRule,
    )
}
"""Rule type → rule class."""

RULE_TYPES: tuple[str, ...] = tuple(RULES)

if TYPE_CHECKING:  # the same union, spelled out for the type checker
    RuleConfig = Annotated[
        CrowdingRuleConfig
        | LoiteringRuleConfig
        | IntrusionRuleConfig
        | LineCrossingRuleConfig
        | VehicleStopRuleConfig
        | FallRuleConfig
        | TamperRuleConfig
        | OfflineRuleConfig
        | RunningRuleConfig
        | GatheringRuleConfig
        | DensityRuleConfig
        | AbandonedObjectRuleConfig,
        Field(discriminator="type"),
    ]
else:
    RuleConfig = Annotated[
        Union[tuple(cls.Config for cls in RULES.values())],  # noqa: UP007
        Field(discriminator="type"),
    ]
"""One entry of ``cameras[].rules``, chosen by its ``type``."""


def build_rule(cfg: Any, ctx: RuleContext) -> DetectionRule | FrameRule:
    """The rule of one ``cameras[].rules[]`` entry (a validated config model)."""
    cls = RULES.get(getattr(cfg, "type", ""))
    if cls is None or not isinstance(cfg, cls.Config):
        raise RuleBuildError(f"{ctx.what}: no rule implements type {getattr(cfg, 'type', cfg)!r}")
    return cls.from_config(cfg, ctx)
