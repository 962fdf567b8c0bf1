"""One ByteTrack per camera, fed with gridwatch :class:`~gridwatch.model.Detections`.

ultralytics' own ``model.track(persist=True)`` stores the tracker on the model, so one model can
only track one stream; with batched inference across cameras that would mix identities. Here
each camera owns a :class:`CameraTracker` wrapping ultralytics'
:class:`~ultralytics.trackers.byte_tracker.BYTETracker` directly, configured from the
``bytetrack.yaml`` shipped inside the installed ultralytics package (nothing is downloaded).

Track ids are per tracker (ultralytics ≥ 8.4 numbers them per ``BYTETracker`` instance), start
at 1, and restart at 1 after :meth:`CameraTracker.reset`, so rules keyed on track ids must be
reset with it.

A tracker is not thread-safe: the worker updates a camera's tracker from one thread, in frame
order.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gridwatch.model import Detections

logger = logging.getLogger(__name__)

NOMINAL_FPS = 30.0
"""The frame rate ByteTrack's ``track_buffer`` (in frames) is specified at."""


@functools.cache
def bytetrack_defaults() -> dict[str, Any]:
    """The settings in ultralytics' packaged ``cfg/trackers/bytetrack.yaml``, read once."""
    from ultralytics.utils import ROOT, YAML

    path = Path(ROOT) / "cfg" / "trackers" / "bytetrack.yaml"
    load: Any = YAML.load  # untyped in ultralytics
    cfg = dict(load(path))
    if cfg.get("tracker_type") != "bytetrack":  # pragma: no cover - packaging change
        raise RuntimeError(f"{path} is not a bytetrack config: {cfg}")
    return cfg


@dataclass(frozen=True, slots=True)
class _BoxesView:
    """The slice of ultralytics' ``Boxes`` API that ``BYTETracker.update`` reads.

    ``conf``, ``cls``, ``xyxy``, ``xywh``, ``len()`` and boolean-mask indexing. It must not have
    an ``xywhr`` attribute: the tracker takes its presence to mean oriented boxes.
    """

    xyxy: npt.NDArray[np.float32]
    conf: npt.NDArray[np.float32]
    cls: npt.NDArray[np.float32]

    @property
    def xywh(self) -> npt.NDArray[np.float32]:
        xy = (self.xyxy[:, :2] + self.xyxy[:, 2:]) / 2.0
        wh = self.xyxy[:, 2:] - self.xyxy[:, :2]
        return np.concatenate([xy, wh], axis=1).astype(np.float32)

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, mask: npt.NDArray[np.bool_]) -> _BoxesView:
        return _BoxesView(self.xyxy[mask], self.conf[mask], self.cls[mask])


class CameraTracker:
    """ByteTrack for one camera.

    ``frame_rate`` is the camera's *analysis* rate (frames that reach the tracker per second,
    after motion gating and stride), not the stream's. ByteTrack's ``track_buffer`` is given in
    frames at 30 fps (1 s in the packaged yaml); as ByteTrack originally did, it is scaled by
    ``frame_rate / 30`` so a lost track survives the same *time* whatever the analysis rate.
    ``track_buffer_s`` sets that time directly (a person behind a lamp post for 2 s keeps their
    id with ``track_buffer_s=3``). Buffers count frames the tracker sees, so a motion gate that
    skips frames stretches the buffer in time.

    :meth:`update` returns the **input** detections (the detector's boxes, not the Kalman-smoothed
    ones), in input order, that belong to a confirmed track, with ``tracker_id`` set. Detections
    the tracker did not confirm (a new track's first frame after the first, a box too weak to
    start a track) are dropped, as ultralytics' ``track`` does, unless ``keep_unmatched=True``,
    which returns every input row and ``-1`` for the unmatched ones.

    ``settings`` overrides keys of ``bytetrack.yaml`` (``track_high_thresh``, ``track_low_thresh``,
    ``new_track_thresh``, ``match_thresh``, ``fuse_score``, ``track_buffer``).
    """

    def __init__(
        self,
        frame_rate: float,
        *,
        camera_id: str = "",
        track_buffer_s: float | None = None,
        keep_unmatched: bool = False,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        if not frame_rate > 0 or not math.isfinite(frame_rate):
            raise ValueError(f"frame_rate must be a positive number, got {frame_rate}")
        if track_buffer_s is not None and not track_buffer_s > 0:
            raise ValueError(f"track_buffer_s must be positive, got {track_buffer_s}")
        from ultralytics.trackers import byte_tracker
        from ultralytics.utils import IterableSimpleNamespace

        tracker_cls: Any = byte_tracker.BYTETracker  # untyped in ultralytics

        cfg = dict(bytetrack_defaults())
        unknown = sorted(set(settings or {}) - set(cfg) - {"tracker_type"})
        if unknown:
            raise ValueError(f"unknown ByteTrack settings {unknown}; known: {sorted(cfg)}")
        cfg.update(settings or {})
        if track_buffer_s is None:
            track_buffer_s = float(cfg["track_buffer"]) / NOMINAL_FPS
        cfg["track_buffer"] = max(1, math.ceil(track_buffer_s * frame_rate - 1e-9))

        self.camera_id = camera_id
        self.frame_rate = float(frame_rate)
        self.track_buffer_s = float(track_buffer_s)
        self.keep_unmatched = keep_unmatched
        self.settings: Mapping[str, Any] = cfg
        self._tracker: Any = tracker_cls(args=IterableSimpleNamespace(**cfg))
        logger.debug(
            "camera %r: ByteTrack at %.2f fps, lost tracks kept %d frames (%.2f s), %s",
            camera_id,
            frame_rate,
            cfg["track_buffer"],
            track_buffer_s,
            cfg,
        )

    @property
    def buffer_frames(self) -> int:
        """How many analysed frames a lost track is kept for."""
        return int(self.settings["track_buffer"])

    @property
    def frame_count(self) -> int:
        """Frames fed to :meth:`update` since creation or the last :meth:`reset`."""
        return int(self._tracker.frame_id)

    def update(self, detections: Detections) -> Detections:
        """Advance the tracker by one analysed frame and return the tracked detections.

        Call it for every analysed frame, including frames with no detections: an empty update
        is what ages lost tracks out.
        """
        n = len(detections)
        boxes = _BoxesView(
            xyxy=detections.xyxy.astype(np.float32, copy=False),
            conf=detections.confidence.astype(np.float32, copy=False),
            cls=detections.class_id.astype(np.float32),
        )
        out = np.asarray(self._tracker.update(boxes, None), dtype=np.float64)
        ids = np.full(n, -1, dtype=np.int64)
        if out.size:
            # rows: x1 y1 x2 y2 track_id score cls idx, idx into *this* frame's input
            idx = out[:, -1].astype(np.int64)
            tid = out[:, 4].astype(np.int64)
            valid = (idx >= 0) & (idx < n)
            if not valid.all():  # pragma: no cover - would be an ultralytics bug
                logger.warning(
                    "camera %r: tracker returned out-of-range rows %s", self.camera_id, idx
                )
            ids[idx[valid]] = tid[valid]
        tracked = detections.with_tracker_ids(ids)
        if self.keep_unmatched:
            return tracked
        return tracked.select(np.flatnonzero(ids >= 0))

    def reset(self) -> None:
        """Forget every track and restart ids at 1 (after a camera reconnects or moves)."""
        self._tracker.reset()
