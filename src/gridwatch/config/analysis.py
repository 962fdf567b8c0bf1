"""Config sections for spending CPU only where something moves: ``analysis:`` and ``metrics:``.

Kept out of :mod:`gridwatch.config` (which includes them) so that module stays about the
deployment; every model forbids unknown keys and documents its fields, like the rest.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gridwatch.config.strict import Strict as _Strict


class MotionConfig(_Strict):
    """The motion gate (``gridwatch.ingest.motion``)."""

    enabled: bool = Field(
        default=True,
        title="Motion gate",
        description="Run the detector only when something moved in a zone or objects were "
        "there at the last look; off: every analysed frame goes to the detector, whole.",
    )
    threshold: int = Field(
        default=20,
        ge=1,
        le=254,
        title="Threshold",
        description="Grey levels (0-255) a pixel must change by, between analysed frames.",
    )
    min_area: float = Field(
        default=0.0004,
        ge=0,
        lt=1,
        title="Smallest blob",
        description="Smallest moving blob that counts, as a fraction of the picture.",
    )
    scene_change: float = Field(
        default=0.5,
        gt=0,
        le=1,
        title="Scene change",
        description="Changed fraction above which the whole frame is looked at (lights, PTZ).",
    )
    width: int = Field(
        default=192,
        ge=16,
        le=1920,
        title="Mask width",
        description="Width in pixels of the downsized luma the motion mask is computed on.",
    )


class RegionsConfig(_Strict):
    """Region detection (``gridwatch.detectors.regions``)."""

    enabled: bool = Field(
        default=True,
        title="Region detection",
        description="Detect on a mosaic of regions around motion and the last boxes instead "
        "of the whole frame (needs backend openvino or onnx).",
    )
    margin_px: int = Field(
        default=8, ge=0, le=256, title="Margin", description="Context around a region, pixels."
    )
    margin_frac: float = Field(
        default=0.0,
        ge=0,
        le=1,
        title="Relative margin",
        description="Extra context, as a fraction of the region's larger side.",
    )
    expand: float = Field(
        default=0.3,
        ge=0,
        le=3,
        title="Movement allowance",
        description="How far a last box may have moved, as a fraction of its height.",
    )
    full_frame_ratio: float = Field(
        default=0.75,
        gt=0,
        le=2,
        title="Whole-frame ratio",
        description="Look at the whole frame when the mosaic reaches this share of its input.",
    )
    scale: Literal["frame", "native"] = Field(
        default="frame",
        title="Region scale",
        description="frame: regions at the whole frame's detection scale (a region look and a "
        "whole-frame look agree, counts do not flicker); native: full resolution (smaller "
        "people found, more CPU).",
    )
    max_canvas: int = Field(
        default=640,
        ge=64,
        le=1920,
        multiple_of=32,
        title="Largest mosaic",
        description="Largest mosaic side in pixels (a multiple of 32); the mosaic shapes "
        "used are a fixed set up to 448x384.",
    )


class BatchingConfig(_Strict):
    """The worker's inference service (``gridwatch.detectors.batching``)."""

    max_batch: int = Field(
        default=8, ge=1, le=256, title="Largest batch", description="Images per detector call."
    )
    max_wait_ms: float = Field(
        default=5.0,
        ge=0,
        le=1000,
        title="Batch wait",
        description="How long a request may wait for others to join its batch, ms.",
    )
    max_pending: int = Field(
        default=256,
        ge=1,
        title="Most pending",
        description="Requests waiting at most (one per camera); beyond it frames are dropped.",
    )


class AdaptiveDecodeConfig(_Strict):
    """Keyframe-only decoding of idle cameras (``CameraReader.set_keyframes_only``)."""

    enabled: bool = Field(
        default=True,
        title="Adaptive decode",
        description="Idle cameras with a low analysis rate decode keyframes only.",
    )
    max_fps: float = Field(
        default=1.0,
        gt=0,
        le=30,
        title="Highest analysis fps",
        description="Only cameras analysed at this rate or slower switch to keyframes.",
    )
    idle_s: float = Field(
        default=10.0,
        gt=0,
        title="Idle time",
        description="Seconds without motion or objects in a zone before switching.",
    )


class CountingConfig(_Strict):
    """How counting rules count (``gridwatch.tracking.counting``): over tracks, not one frame."""

    enabled: bool = Field(
        default=True,
        title="Count over tracks",
        description="Count held tracks and leave out props (off: every box of the frame).",
    )
    hold_s: float = Field(
        default=1.0,
        ge=0,
        le=30,
        title="Hold",
        description="A person tracked on two or more frames and missed by the detector in this "
        "frame is still counted at their last box for this many seconds.",
    )
    static_after_s: float = Field(
        default=120.0,
        gt=0,
        title="Prop after",
        description="A thing that has never moved and never stood upright for this long (a "
        "jacket on the lawn, a bin) is not counted. A person who walked in and fell stays "
        "counted; the fall rule sees every box whatever this says.",
    )
    forget_s: float = Field(
        default=30.0,
        gt=0,
        title="Forget prop after",
        description="A prop's place with nothing at it for this long is forgotten.",
    )


class AnalysisConfig(_Strict):
    """How much detector work each frame gets (``gridwatch.detectors.analyser``)."""

    motion: MotionConfig = Field(
        default_factory=MotionConfig, title="Motion gate", description="Skip static frames."
    )
    regions: RegionsConfig = Field(
        default_factory=RegionsConfig,
        title="Regions",
        description="Detect where things move, on a mosaic of regions.",
    )
    refresh_s: float = Field(
        default=30.0,
        ge=0,
        title="Whole-frame refresh",
        description="Look at the whole frame at least this often, seconds (0: never).",
    )
    memory_s: float = Field(
        default=1.0,
        ge=0,
        le=60,
        title="Box memory",
        description="Boxes found in this many past seconds seed regions, so an object missed "
        "once is looked for again.",
    )
    stationary_looks: int = Field(
        default=4,
        ge=0,
        le=1000,
        title="Stationary after",
        description="Looks in a row a box must stand still (no motion inside) to be carried "
        "forward without looking again until motion touches it or the next whole-frame look "
        "(a parked car keeps no detector busy); 0: never.",
    )
    batching: BatchingConfig = Field(
        default_factory=BatchingConfig,
        title="Batching",
        description="One inference service shared by every camera of the worker.",
    )
    adaptive_decode: AdaptiveDecodeConfig = Field(
        default_factory=AdaptiveDecodeConfig,
        title="Adaptive decode",
        description="Decode keyframes only while a slow camera is idle.",
    )
    upscale: bool = Field(
        default=False,
        title="Look closer",
        description="Scale frames smaller than the detector's imgsz up to it, for whole-frame "
        "looks and regions alike: people far away in a small picture (a sub-stream, an elevated "
        "camera) are too few pixels tall to be found at their own size. Costs (imgsz / frame "
        "side)^2 more per look; exported backends (openvino, onnx) only.",
    )
    counting: CountingConfig = Field(
        default_factory=lambda: CountingConfig(),
        title="Counting",
        description="How the people a counting rule (crowding) sees are taken from tracks.",
    )


class MetricsConfig(_Strict):
    """Prometheus metrics of the worker (``gridwatch.worker.metrics``)."""

    enabled: bool = Field(
        default=False,
        title="Serve metrics",
        description="Serve Prometheus metrics at http://host:port/metrics.",
    )
    host: str = Field(
        default="127.0.0.1",
        title="Host",
        description="Address to listen on (0.0.0.0 for every interface).",
    )
    port: int = Field(
        default=9108,
        ge=0,
        le=65535,
        title="Port",
        description="TCP port (0: any free port, logged at start).",
    )
