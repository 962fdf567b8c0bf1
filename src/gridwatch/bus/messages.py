"""Typed, versioned messages that cross process boundaries.

Each message is produced in one place and read by everyone with the same model, so the console,
the CLI and metrics cannot parse it three different ways. The JSON keys are the wire contract
and stay as they are: version 1 is the format that has always been sent, so ``schema_version``
is written only from version 2 on, and a message without it reads as version 1 (old and new
processes exchange identical bytes). Readers are tolerant (unknown keys are kept, malformed
fields become None) because old and new processes run side by side during an upgrade.

>>> h = CameraHealth(camera_id="gate-9", state="online", online=True, tamper=["covered"])
>>> CameraHealth.from_json(h.to_json()).tamper
['covered']
>>> CaseReply.from_json(b'{"ok": false, "code": "forbidden", "error": "no"}').code
'forbidden'
>>> SnapshotMeta.from_headers({"Gw-Grid": ["g1"], "Gw-Blur": ["people"],
...                            "Gw-People": ["[[0,0,1,1]]"], "Gw-Boxes": ["[]"]}).blur_plan()
(False, [[0.0, 0.0, 1.0, 1.0]], [])
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

SCHEMA_VERSION = 1


class Message(BaseModel):
    """Base of the bus messages: versioned, tolerant of keys a newer producer added."""

    model_config = ConfigDict(extra="allow")
    schema_version: int = SCHEMA_VERSION

    def wire_dict(self, **dump: Any) -> dict[str, Any]:
        out = self.model_dump(mode="json", **dump)
        if self.schema_version == SCHEMA_VERSION:
            out.pop("schema_version", None)
        return out

    def to_json(self) -> bytes:
        return json.dumps(self.wire_dict(), default=str, ensure_ascii=False).encode()


# -- camera health --------------------------------------------------------------------------


def _num(v: object) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


class CameraHealth(Message):
    """A worker's periodic report on ``gw.v1.health.<camera>``: produced by
    ``Worker.health()``, read by the console, ``gridwatch camera list --status`` and metrics.

    The frame rules add ``online``/``offline`` and ``tamper``/``tamper_reference``; the crowd
    counter ``counting``; the analyser ``analysis`` (kept as extra keys when unknown here).
    """

    camera_id: str
    state: str = "unknown"
    ts: float | None = None
    frames_decoded: int | None = None
    frames_dropped: int | None = None
    frames_analysed: int | None = None
    corrupt_packets: int | None = None
    reconnects: int | None = None
    failures: int | None = None
    last_error: str | None = None
    seconds_since_frame: float | None = None
    resolution: list[int | None] | None = None
    detector_ms_p50: float | None = None
    frame_age_ms_p50: float | None = None
    count: int | None = None
    online: bool = False
    analysis_fps: float | None = None
    offline: str | None = None
    tamper: list[str] = Field(default_factory=list)
    tamper_reference: bool | None = None
    counting: dict[str, Any] | None = None
    analysis: dict[str, Any] | None = None

    _NUMBERS: ClassVar[tuple[str, ...]] = (
        "ts",
        "seconds_since_frame",
        "detector_ms_p50",
        "frame_age_ms_p50",
        "analysis_fps",
    )

    @classmethod
    def from_dict(cls, report: Mapping[str, Any]) -> CameraHealth | None:
        """Parse a report; fields of the wrong type are dropped (None when no camera id)."""
        if not isinstance(report, Mapping) or not isinstance(report.get("camera_id"), str):
            return None
        d = dict(report)
        for key in cls._NUMBERS:
            if key in d:
                d[key] = _num(d[key])
        if "count" in d and not (isinstance(d["count"], int) and not isinstance(d["count"], bool)):
            d["count"] = None
        d["tamper"] = [t for t in (d.get("tamper") or []) if isinstance(t, str)]
        d["online"] = bool(d.get("online"))
        try:
            return cls.model_validate(d)
        except ValidationError:
            keep = {k: d[k] for k in ("camera_id", "state", "online", "tamper") if k in d}
            keep["state"] = str(keep.get("state", "unknown"))
            return cls.model_validate(keep)

    @classmethod
    def from_json(cls, data: bytes | str) -> CameraHealth | None:
        try:
            report = json.loads(data)
        except ValueError:
            return None
        return cls.from_dict(report) if isinstance(report, dict) else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object as published (keys as ``Worker.health()`` always wrote them; the
        optional rule and analyser keys only when present)."""
        out = self.wire_dict()
        for key in ("offline", "tamper", "tamper_reference", "counting", "analysis"):
            if key not in self.model_fields_set:
                out.pop(key, None)
        return out

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict()).encode()


# -- case replies ---------------------------------------------------------------------------


class Reply(Message):
    """A request/reply answer: ``{"ok": true, ...}`` or ``{"ok": false, "code", "error"}``."""

    ok: bool
    code: str | None = None
    error: str | None = None

    @classmethod
    def failure(cls, code: str, error: str) -> Reply:
        return cls(ok=False, code=code, error=error)

    @classmethod
    def from_json(cls, data: bytes | str) -> Reply:
        return cls.model_validate_json(data)


class CaseReply(Reply):
    """The case service's answer: ``case`` for get/act, ``cases`` for list, ``unchanged`` when
    an action changed nothing (the payloads stay JSON objects; :class:`gridwatch.cases.model.
    Case` validates them where they are used, so this module does not import cases)."""

    case: dict[str, Any] | None = None
    cases: list[dict[str, Any]] | None = None
    unchanged: bool | None = None

    @classmethod
    def from_json(cls, data: bytes | str) -> CaseReply:
        return cls.model_validate_json(data)

    def to_json(self) -> bytes:
        """The reply as the service always wrote it: ``ok`` first, only the fields set."""
        body: dict[str, Any] = {"ok": self.ok}
        body.update(self.wire_dict(exclude_unset=True, exclude={"ok"}))
        return json.dumps(body, default=str, ensure_ascii=False).encode()


# -- snapshot metadata ----------------------------------------------------------------------

SNAPSHOT_GRID_HEADER = "Gw-Grid"
SNAPSHOT_BOXES_HEADER = "Gw-Boxes"
SNAPSHOT_BLUR_HEADER = "Gw-Blur"
"""``people``: blur ``Gw-People`` and ``Gw-Boxes``; ``whole`` (or absent): the whole picture."""
SNAPSHOT_PEOPLE_HEADER = "Gw-People"
"""JSON list of normalized xyxy boxes: every person the detector found on the frame."""
SNAPSHOT_KEEP_HEADER = "Gw-Keep"
"""JSON list of normalized xyxy boxes without scene pixels (the label bands), kept clear."""
BLUR_PEOPLE = "people"
BLUR_WHOLE = "whole"

Box = list[float]


def _rounded(box: Sequence[float]) -> list[float]:
    return [round(float(v), 4) for v in box[:4]]


def boxes_json(boxes: Sequence[Sequence[float]], *, rounded: bool = True) -> str:
    rows = [_rounded(b) if rounded else list(b) for b in boxes]
    return json.dumps(rows, separators=(",", ":"))


def parse_boxes(raw: str | None) -> list[Box] | None:
    """A JSON list of 4-number boxes; None when missing or malformed."""
    if raw is None:
        return None
    try:
        boxes = json.loads(raw)
        if not isinstance(boxes, list):
            return None
        return [[float(v) for v in b[:4]] for b in boxes if isinstance(b, list) and len(b) >= 4]
    except (ValueError, TypeError):
        return None


class SnapshotMeta(BaseModel):
    """The metadata of a snapshot object (``Gw-Grid``, ``Gw-Boxes``, ``Gw-Blur``,
    ``Gw-People``, ``Gw-Keep``): written by the worker's snapshot store, read by the snapshot
    service. Reading fails closed: anything missing or malformed blurs the whole picture."""

    model_config = ConfigDict(frozen=True)
    grid: str | None = None
    boxes: list[Box] | None = None
    """The rule's boxes (normalized xyxy)."""
    blur: Literal["people", "whole"] | None = None
    people: list[Box] | None = None
    keep: list[Box] = Field(default_factory=list)

    @field_validator("blur", mode="before")
    @classmethod
    def _known_blur(cls, v: object) -> object:
        return v if v in (BLUR_PEOPLE, BLUR_WHOLE) else None

    def to_headers(self) -> dict[str, str]:
        """The headers of the fields set (values as strings; the store lists them)."""
        out: dict[str, str] = {}
        if self.grid is not None:
            out[SNAPSHOT_GRID_HEADER] = self.grid
        if self.boxes is not None:
            out[SNAPSHOT_BOXES_HEADER] = boxes_json(self.boxes, rounded=False)
        if self.blur is not None:
            out[SNAPSHOT_BLUR_HEADER] = self.blur
        if self.people is not None:
            out[SNAPSHOT_PEOPLE_HEADER] = boxes_json(self.people)
        if self.keep:
            out[SNAPSHOT_KEEP_HEADER] = boxes_json(self.keep)
        return out

    @classmethod
    def from_headers(cls, headers: Mapping[str, Sequence[str]] | None) -> SnapshotMeta:
        def one(key: str) -> str | None:
            values = (headers or {}).get(key)
            return values[0] if values else None

        return cls(
            grid=one(SNAPSHOT_GRID_HEADER),
            boxes=parse_boxes(one(SNAPSHOT_BOXES_HEADER)),
            blur=one(SNAPSHOT_BLUR_HEADER),  # type: ignore[arg-type]
            people=parse_boxes(one(SNAPSHOT_PEOPLE_HEADER)),
            keep=parse_boxes(one(SNAPSHOT_KEEP_HEADER)) or [],
        )

    def blur_plan(self) -> tuple[bool, list[Box], list[Box]]:
        """(whole picture?, boxes to blur, boxes to keep): the people and the rule's boxes when
        the worker listed every person; else the whole picture."""
        if self.blur != BLUR_PEOPLE or self.people is None or self.boxes is None:
            return True, [], list(self.keep)
        return False, self.people + self.boxes, list(self.keep)
