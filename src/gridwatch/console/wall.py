"""What the alert wall shows: one :class:`WallItem` per incident, folded from alerts and case
events as they arrive.

Pure (no I/O): the live feed (:mod:`.feed`) reads GW_ALERTS and GW_CASES and folds each message
here, then sends the changed item to the browser, which only replaces rows. Case events are
folded with the case service's own :func:`gridwatch.cases.model.apply`, so the wall and the
service cannot disagree about a state, and the deadline shown is the one the service escalates
on (:func:`deadline_of` mirrors :func:`gridwatch.cases.model.missed_deadline`).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gridwatch.cases.model import Case, CaseEvent, CaseState, apply
from gridwatch.cases.settings import CasesConfig
from gridwatch.model import Alert, IncidentState


class Deadline(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["acknowledge", "on_scene"] = Field(description="What must happen by then.")
    at: dt.datetime = Field(description="When the case escalates if it has not happened.")


class WallItem(BaseModel):
    """One incident on the wall: the alert's latest facts and its case."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="The incident (alert) id, which is also the case id.")
    grid_id: str
    camera_id: str
    camera_name: str = ""
    type: str
    severity: str = "warning"
    zone_id: str | None = None
    count: int = 0
    peak_count: int = 0
    alert_state: str = Field(default="", description="raised | updated | cleared; '' unknown.")
    raised_at: dt.datetime = Field(description="When the alert was raised (case opened).")
    stored_at: dt.datetime | None = Field(
        default=None, description="When JetStream stored the raised message."
    )
    updated_at: dt.datetime
    snapshot: str | None = Field(default=None, description="Snapshot of the raised message.")
    latest_snapshot: str | None = None
    clip: str | None = Field(
        default=None, description="Evidence clip of the raised message (object in gw_clips)."
    )
    state: CaseState = Field(default=CaseState.OPEN, description="The case's state.")
    case: Case | None = None
    deadline: Deadline | None = None


def deadline_of(case: Case, cases: CasesConfig) -> Deadline | None:
    """The next deadline of ``case`` (what the case service escalates on), if any."""
    d = cases.deadline(case.severity)
    if case.state is CaseState.OPEN:
        return Deadline(
            kind="acknowledge", at=case.opened_at + dt.timedelta(seconds=d.acknowledge_s)
        )
    if d.on_scene_s is not None and case.state in (CaseState.ACKNOWLEDGED, CaseState.DISPATCHED):
        return Deadline(kind="on_scene", at=case.opened_at + dt.timedelta(seconds=d.on_scene_s))
    return None


class Wall:
    """The items of one wall, bounded to ``max_items`` (the oldest raised leave first)."""

    def __init__(self, cases: CasesConfig, *, max_items: int = 500) -> None:
        self.cases = cases
        self.max_items = max_items
        self.items: dict[str, WallItem] = {}

    def _bound(self) -> None:
        while len(self.items) > self.max_items:
            oldest = min(self.items.values(), key=lambda i: i.raised_at)
            del self.items[oldest.id]

    def newest_first(self) -> list[WallItem]:
        return sorted(self.items.values(), key=lambda i: i.raised_at, reverse=True)

    def _with_case(self, item: WallItem, case: Case) -> WallItem:
        item.case = case
        item.state = case.state
        item.deadline = deadline_of(case, self.cases)
        item.updated_at = max(item.updated_at, case.updated_at or case.opened_at)
        return item

    def seed_case(self, case: Case) -> WallItem:
        """A case known from the case service (open, older than the replayed window)."""
        item = self.items.get(case.id)
        if item is None:
            item = WallItem(
                id=case.id,
                grid_id=case.grid_id,
                camera_id=case.camera_id,
                camera_name=case.camera_name,
                type=case.type,
                severity=case.severity,
                zone_id=case.zone_id,
                count=case.count,
                peak_count=case.count,
                raised_at=case.opened_at,
                updated_at=case.updated_at or case.opened_at,
                snapshot=case.snapshot,
                latest_snapshot=case.snapshot,
            )
            self.items[case.id] = item
            self._bound()
        elif item.case is not None and item.case.version >= case.version:
            return item
        return self._with_case(item, case)

    def fold_alert(self, alert: Alert, stored_at: dt.datetime | None = None) -> WallItem | None:
        """Fold one alert message; None when it is older than everything the wall keeps."""
        item = self.items.get(alert.id)
        raised = alert.state is IncidentState.RAISED
        if item is None:
            item = WallItem(
                id=alert.id,
                grid_id=alert.grid_id,
                camera_id=alert.camera_id,
                camera_name=alert.camera_name,
                type=alert.type,
                severity=alert.severity,
                zone_id=alert.zone_id,
                raised_at=alert.observed_at,
                updated_at=alert.observed_at,
                stored_at=stored_at if raised else None,
            )
            self.items[alert.id] = item
            self._bound()
            if item.id not in self.items:  # older than everything kept
                return None
        if raised:
            item.raised_at = alert.observed_at
            item.stored_at = stored_at
            item.snapshot = alert.snapshot or item.snapshot
            item.clip = alert.clip or item.clip
        item.count = alert.count
        item.peak_count = max(item.peak_count, alert.peak_count)
        item.alert_state = alert.state.value
        item.severity = alert.severity
        item.updated_at = max(item.updated_at, alert.observed_at)
        item.latest_snapshot = alert.snapshot or item.latest_snapshot
        if item.snapshot is None:
            item.snapshot = alert.snapshot
        if item.case is None:
            d = self.cases.deadline(alert.severity)
            if item.state is CaseState.OPEN:
                item.deadline = Deadline(
                    kind="acknowledge",
                    at=item.raised_at + dt.timedelta(seconds=d.acknowledge_s),
                )
        return item

    def fold_case(self, event: CaseEvent, seq: int = 0) -> WallItem | None:
        """Apply one case event; None when it was already applied (a seeded case) or its case
        is unknown and the event is not the opening one (opened before the window)."""
        item = self.items.get(event.case_id)
        case = item.case if item is not None else None
        if case is not None and event.version <= case.version:
            return None
        if case is None and event.version != 1:
            return None
        new = apply(case, event).model_copy(update={"last_seq": seq})
        if item is None:
            return self.seed_case(new)
        return self._with_case(item, new)
