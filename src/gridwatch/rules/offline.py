"""Offline: no frames for ``offline_after_s``, telling a silent camera from a stuck pipeline.

The reader records when the last *packet* (compressed data from the network) and the last
decoded *frame* arrived. With no frames for ``offline_after_s``:

* no packets either → ``silent``: the camera, its power or the network is down; send someone
  to the pole;
* packets still arriving → ``stuck``: the stream is there but nothing decodes (a codec change,
  a corrupt stream, a hung decoder): restart the worker or reconfigure the camera, no ladder
  needed.

(Savant and DeepStream make the same distinction; operators act very differently on the two.)

``started_at`` is when frames stopped, not when the alert was raised. The incident is
``updated`` if the kind changes (packets stop too), and ``cleared`` with reason ``recovered``
once frames have been arriving again for ``clear_after_s``.

>>> rule = OfflineRule(OfflineRuleConfig(type="offline", offline_after_s=10, clear_after_s=0))
>>> def s(ts, frame, packet):
...     return FrameSample(ts, None, frame, packet)
>>> [(e.state.value, e.details["kind"]) for t in range(0, 30, 5)
...  for e in rule.update_frame(s(float(t), 0.0 if t < 25 else 25.0, float(t)))]
[('raised', 'stuck'), ('cleared', 'stuck')]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from gridwatch.model import IncidentEvent
from gridwatch.rules.base import (
    Always,
    Episode,
    EpisodeParams,
    FrameSample,
    RuleContext,
    ScheduleLike,
)
from gridwatch.rules.settings import RuleSettings, clear_after_field


class OfflineRuleConfig(RuleSettings):
    type: Literal["offline"] = Field(title="Type", description="Rule type.")
    offline_after_s: float = Field(
        default=30.0,
        gt=0,
        title="Offline after",
        description="Seconds without a decoded frame before the camera is offline.",
    )
    clear_after_s: float = clear_after_field(2.0, "of frames arriving again")


class OfflineRule:
    type = "offline"
    Config = OfflineRuleConfig

    def __init__(self, params: OfflineRuleConfig, *, schedule: ScheduleLike | None = None) -> None:
        self.params = params
        self.rule_key = "offline"
        self._schedule: ScheduleLike = schedule or Always()
        self._episode = Episode(
            self.rule_key,
            self.type,
            None,
            EpisodeParams(0.0, params.clear_after_s, 0.0, 0.0),
            severity=params.severity,
        )
        self._first_ts: float | None = None
        self.kind: str | None = None
        """``silent`` or ``stuck`` while offline, else ``None``."""

    @classmethod
    def from_config(cls, cfg: OfflineRuleConfig, ctx: RuleContext) -> OfflineRule:
        return cls(cfg, schedule=ctx.schedule)

    def close(self, ts: float, reason: str) -> list[IncidentEvent]:
        return self._episode.force_clear(ts, reason)

    def health(self) -> Mapping[str, Any]:
        return {"online": self.kind is None, "offline": self.kind}

    def update_frame(self, sample: FrameSample) -> list[IncidentEvent]:
        p = self.params
        ts = sample.ts
        if self._first_ts is None:
            self._first_ts = ts
        since = sample.last_frame_ts if sample.last_frame_ts is not None else self._first_ts
        frame_age = ts - since
        offline = frame_age >= p.offline_after_s
        packet_age = None if sample.last_packet_ts is None else ts - sample.last_packet_ts
        if offline:
            silent = packet_age is None or packet_age >= p.offline_after_s
            self.kind = "silent" if silent else "stuck"
        elif self.kind is not None and not self._episode.active:
            self.kind = None
        kind = self.kind or "silent"
        details = {
            "kind": kind,
            "seconds_since_frame": round(frame_age, 1),
            "seconds_since_packet": None if packet_age is None else round(packet_age, 1),
            "offline_after_s": p.offline_after_s,
        }
        events = self._episode.step(
            ts,
            offline,
            scheduled=self._schedule.is_active(ts),
            details=details,
            onset=since,
            signature=kind,
            clear_reason="recovered",
        )
        if not self._episode.active and not offline:
            self.kind = None
        return events
