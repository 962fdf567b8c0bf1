"""Per-camera multi-object tracking (ByteTrack via ultralytics, one instance per camera)."""

from __future__ import annotations

from gridwatch.tracking.bytetrack import CameraTracker, bytetrack_defaults

__all__ = ["CameraTracker", "bytetrack_defaults"]
