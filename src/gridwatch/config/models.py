"""The deployment config's models: cameras, grids, zones, rules, schedules, and the sections
each service owns (analysis, alerts, console, notify, cases, leases, registry).

Every model forbids unknown keys (a typo is an error, not a silently ignored setting) and every
field has a title and description so ``gridwatch config schema`` documents itself. Loading with
file:line errors is :mod:`gridwatch.config.loading`.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Sequence
from typing import Literal

from pydantic import Field, field_validator

from gridwatch.auth.models import UserConfig
from gridwatch.calibration.settings import CalibrationConfig
from gridwatch.cases.settings import CasesConfig
from gridwatch.config.analysis import AnalysisConfig, MetricsConfig
from gridwatch.config.strict import Id
from gridwatch.config.strict import Strict as _Strict
from gridwatch.console.settings import ConsoleConfig
from gridwatch.detectors import DetectorConfig as DetectorConfig
from gridwatch.detectors import OpenVinoDetectorConfig
from gridwatch.gb28181.settings import Gb28181Settings, id_text, validate_camera_gb_id
from gridwatch.leases.settings import LeaseConfig
from gridwatch.notify.settings import NotifyConfig
from gridwatch.rules.registry import RULE_TYPES as RULE_TYPES
from gridwatch.rules.registry import RuleConfig as RuleConfig
from gridwatch.stats.settings import StatsConfig

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")


class NatsConfig(_Strict):
    url: str = Field(
        default="nats://127.0.0.1:4222",
        title="NATS URL",
        description="Server URL(s), comma separated for a cluster.",
    )
    connect_timeout_s: float = Field(
        default=5.0, gt=0, title="Connect timeout", description="Seconds per connection attempt."
    )
    user: str | None = Field(default=None, title="User", description="NATS user name, if any.")
    password: str | None = Field(
        default=None, title="Password", description="NATS password (prefer the env variable)."
    )
    tls_ca_file: str | None = Field(
        default=None,
        title="TLS CA file",
        description="CA certificate (PEM) the NATS servers' TLS certificates are checked "
        "against (`gridwatch nats-certs`); also $GW_NATS_TLS_CA. With it, clients use TLS.",
    )
    replicas: int = Field(
        default=1,
        ge=1,
        le=5,
        title="Replicas",
        description="JetStream replicas of the streams and KV buckets this deployment creates "
        "(GW_ALERTS, GW_CASES, gw_cameras, gw_leases, ...): 3 on a 3-node cluster.",
    )


class ScheduleWindow(_Strict):
    days: list[Weekday] = Field(
        default_factory=lambda: list(WEEKDAYS),
        min_length=1,
        title="Days",
        description="Weekdays the window applies to (mon..sun).",
    )
    between: tuple[str, str] = Field(
        title="Between",
        description="Local start and end time, HH:MM; an end before the start crosses midnight.",
    )

    @field_validator("between")
    @classmethod
    def _check_times(cls, v: tuple[str, str]) -> tuple[str, str]:
        for t in v:
            if not _HHMM.match(t):
                raise ValueError(f"time {t!r} must be HH:MM (00:00..24:00)")
        if v[0] == v[1]:
            raise ValueError("start and end must differ")
        return v

    def minutes(self) -> tuple[int, int]:
        def m(t: str) -> int:
            h, mm = t.split(":")
            return int(h) * 60 + int(mm)

        return m(self.between[0]), m(self.between[1])


class GridConfig(_Strict):
    id: Id
    name: str = Field(default="", title="Name", description="Human name of the grid.")


class ZoneConfig(_Strict):
    id: Id
    polygon: list[tuple[float, float]] = Field(
        min_length=3,
        title="Polygon",
        description="Normalized (x, y) points, 0..1, in image coordinates (y down).",
    )

    @field_validator("polygon")
    @classmethod
    def _in_unit_square(cls, v: list[tuple[float, float]]) -> list[tuple[float, float]]:
        for i, (x, y) in enumerate(v):
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"point {i} ({x}, {y}) is outside 0..1")
        crossing = _self_intersection(v)
        if crossing is not None:
            a, b = crossing
            raise ValueError(
                f"the polygon crosses itself (edge {a}-{(a + 1) % len(v)} crosses edge "
                f"{b}-{(b + 1) % len(v)}): list the points in order around the outline, "
                "clockwise or anticlockwise"
            )
        return v


def _self_intersection(points: Sequence[tuple[float, float]]) -> tuple[int, int] | None:
    """The first pair of non-adjacent edges that cross or touch, or None for a simple polygon.

    Why it matters: a "bow-tie" (points out of order) makes even-odd membership count a
    different area than the one the engineer drew, so people are counted in the wrong place
    with no error anywhere. O(n²) is fine for hand-drawn polygons.
    """

    def orient(p: tuple[float, float], q: tuple[float, float], r: tuple[float, float]) -> int:
        v = (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])
        return 0 if abs(v) < 1e-12 else (1 if v > 0 else -1)

    def on_segment(p: tuple[float, float], q: tuple[float, float], r: tuple[float, float]) -> bool:
        return min(p[0], r[0]) <= q[0] <= max(p[0], r[0]) and min(p[1], r[1]) <= q[1] <= max(
            p[1], r[1]
        )

    def cross(
        p1: tuple[float, float],
        p2: tuple[float, float],
        q1: tuple[float, float],
        q2: tuple[float, float],
    ) -> bool:
        o1, o2, o3, o4 = (
            orient(p1, p2, q1),
            orient(p1, p2, q2),
            orient(q1, q2, p1),
            orient(q1, q2, p2),
        )
        if o1 != o2 and o3 != o4:
            return True
        return (
            (o1 == 0 and on_segment(p1, q1, p2))
            or (o2 == 0 and on_segment(p1, q2, p2))
            or (o3 == 0 and on_segment(q1, p1, q2))
            or (o4 == 0 and on_segment(q1, p2, q2))
        )

    n = len(points)
    pts = [(float(x), float(y)) for x, y in points]
    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue  # adjacent through the closing edge
            if cross(pts[i], pts[(i + 1) % n], pts[j], pts[(j + 1) % n]):
                return i, j
    return None


class PrivacyMaskConfig(ZoneConfig):
    """An area excluded from analysis and from every picture (the windows of a home).

    Same shape as a zone so the same tools edit both; a separate type so a rule can never be
    pointed at a mask by mistake.
    """


class CameraClipsConfig(_Strict):
    """A camera's own clip window (a school gate may want more before the onset than a
    square); unset keys take ``alerts.clips``'."""

    pre_s: float | None = Field(
        default=None,
        ge=0,
        le=120,
        title="Pre-roll",
        description="Seconds before the onset for this camera's clips (default alerts.clips).",
    )
    post_s: float | None = Field(
        default=None,
        ge=0,
        le=120,
        title="Post-roll",
        description="Seconds after the onset for this camera's clips (default alerts.clips).",
    )


class CameraConfig(_Strict):
    id: Id
    name: str = Field(default="", title="Name", description="Human name, shown on alerts.")
    grid: str = Field(title="Grid", description="Id of the grid responsible for this camera.")
    url: str = Field(
        title="URL", description="rtsp:// or rtsps:// stream, or a local video file path."
    )
    sub_url: str | None = Field(
        default=None,
        title="Sub-stream URL",
        description="The camera's low-resolution stream; when set, it is analysed instead of "
        "``url`` (decode is the floor of a worker's cost).",
    )
    lat: float | None = Field(
        default=None, ge=-90, le=90, title="Latitude", description="WGS-84 degrees, for maps."
    )
    lon: float | None = Field(
        default=None, ge=-180, le=180, title="Longitude", description="WGS-84 degrees, for maps."
    )
    loop: bool = Field(
        default=False,
        title="Loop",
        description="For a file: play it forever at its native rate.",
    )
    enabled: bool = Field(default=True, title="Enabled", description="Analyse this camera.")
    analysis_fps: float = Field(
        default=2.0,
        gt=0,
        le=30,
        title="Analysis fps",
        description="Frames per second handed to the detector; the stream is decoded in full.",
    )
    zones: list[ZoneConfig] = Field(
        default_factory=list, title="Zones", description="Named polygons rules refer to."
    )
    calibration: CalibrationConfig | None = Field(
        default=None,
        title="Calibration",
        description="Ground-plane calibration (image points to metres): needed by the rules "
        "that measure in metres (running, density); `gridwatch camera calibrate` sets it.",
    )
    rules: list[RuleConfig] = Field(
        default_factory=list, title="Rules", description="What raises alerts on this camera."
    )
    privacy_masks: list[PrivacyMaskConfig] = Field(
        default_factory=list,
        title="Privacy masks",
        description="Normalized polygons blacked out before motion and detection run and in "
        "every snapshot (e.g. the windows of homes facing a square).",
    )
    clips: CameraClipsConfig = Field(
        default_factory=CameraClipsConfig,
        title="Clips",
        description="This camera's evidence-clip window (pre_s, post_s); default alerts.clips.",
    )
    gb28181_id: str | None = Field(
        default=None,
        title="GB/T 28181 id",
        description="The camera's 20-digit channel id on the superior platform (type code 131 "
        "or 132, unique); required for every camera when gb28181.enabled (docs/gb28181.md).",
    )

    @field_validator("url", "sub_url")
    @classmethod
    def _url_scheme(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if "://" in v and not v.startswith(("rtsp://", "rtsps://", "file://")):
            scheme = v.split("://", 1)[0]
            raise ValueError(
                f"url must be rtsp://, rtsps:// or a local file path, not {scheme}:// "
                "(an ONVIF camera's RTSP address is listed by `gridwatch camera discover`)"
            )
        if not v.strip():
            raise ValueError("url must not be empty")
        return v

    @field_validator("gb28181_id", mode="before")
    @classmethod
    def _gb28181_id_text(cls, v: object) -> object:
        return id_text(v)

    @field_validator("gb28181_id")
    @classmethod
    def _gb28181_id(cls, v: str | None) -> str | None:
        return validate_camera_gb_id(v)

    @property
    def is_file(self) -> bool:
        return not self.url.startswith(("rtsp://", "rtsps://"))


class SpoolConfig(_Strict):
    """The worker's local spool for alerts while NATS is unreachable (``alerts.spool``)."""

    dir: str | None = Field(
        default=None,
        title="Directory",
        description="Where spooled alerts and snapshots are kept, one directory per worker "
        "(locked while in use); none: spool/ under $GRIDWATCH_CACHE or ~/.cache/gridwatch.",
    )
    max_items: int = Field(
        default=10000, ge=1, title="Most alerts", description="Spooled alerts at most."
    )
    max_bytes: int = Field(
        default=512 * 1024 * 1024,
        ge=1024 * 1024,
        title="Most bytes",
        description="Disk the spool may use; past it snapshots are dropped first, then alerts.",
    )
    max_age_s: float | None = Field(
        default=7 * 86400.0,
        gt=0,
        title="Oldest alert",
        description="Seconds a spooled alert (and its snapshot of people) is kept; older ones "
        "are dropped instead of replayed, with an ERROR line counting them. None: no limit.",
    )
    direct_attempts: int = Field(
        default=3,
        ge=1,
        le=20,
        title="Direct attempts",
        description="Tries of a live publish before the alert goes to the spool instead.",
    )


class ClipsConfig(_Strict):
    """Evidence clips: each raised alert's video around its onset (issue 14)."""

    enabled: bool = Field(
        default=True,
        title="Clips",
        description="Keep each camera's recent packets and store a clip with every raised "
        "alert in object store gw_clips (no re-encoding on the worker).",
    )
    pre_s: float = Field(
        default=10.0,
        ge=0,
        le=120,
        title="Pre-roll",
        description="Seconds before the onset (from the keyframe at or before it).",
    )
    post_s: float = Field(
        default=10.0,
        ge=0,
        le=120,
        title="Post-roll",
        description="Seconds after the onset; the clip is stored this long after the alert.",
    )
    max_bytes_per_camera: int = Field(
        default=32 * 1024 * 1024,
        ge=1024 * 1024,
        title="Memory per camera",
        description="Bound on a camera's kept packets; a stream too big for it gets a shorter "
        "pre-roll (logged, and in the clip's headers). 4 Mbit/s for 24 s is 12 MB.",
    )
    retention_days: float = Field(
        default=7.0,
        gt=0,
        title="Clip retention",
        description="Days clips are kept (gw_clips TTL), apart from snapshots and alerts.",
    )
    max_bytes: int = Field(
        default=8 * 1024**3,
        ge=1024 * 1024,
        title="Clip store size",
        description="Size limit of gw_clips in bytes; when full, the oldest clips go first.",
    )


class AlertsConfig(_Strict):
    retention_days: float = Field(
        default=30.0, gt=0, title="Retention", description="Days alerts are kept (GW_ALERTS)."
    )
    snapshot_retention_days: float | None = Field(
        default=None,
        gt=0,
        title="Snapshot retention",
        description="Days snapshots are kept (gw_snapshots TTL); none: as long as alerts.",
    )
    duplicate_window_s: float = Field(
        default=120.0,
        gt=0,
        title="Duplicate window",
        description="JetStream de-duplication window for Nats-Msg-Id; spool replays after a "
        "longer outage than this may store an alert whose first ack was lost twice.",
    )
    spool: SpoolConfig = Field(
        default_factory=SpoolConfig,
        title="Spool",
        description="Local disk buffer used while NATS is unreachable.",
    )
    clips: ClipsConfig = Field(
        default_factory=ClipsConfig,
        title="Clips",
        description="Evidence clips with raised alerts, cut from the camera's own packets.",
    )


class RegistryConfig(_Strict):
    """The live camera registry (NATS KV bucket ``gw_cameras``, see ``gridwatch.registry``)."""

    enabled: bool = Field(
        default=False,
        title="Cameras from the registry",
        description="Workers run the cameras of the gw_cameras KV bucket and follow its changes "
        "live, instead of this file's 'cameras' (seed the bucket with `gridwatch camera import`).",
    )
    history: int = Field(
        default=16,
        ge=1,
        le=64,
        title="History",
        description="Revisions kept per camera (who changed what, and undo by hand).",
    )


class GridwatchConfig(_Strict):
    timezone: str = Field(
        default="Asia/Shanghai",
        title="Time zone",
        description="IANA time zone that schedules are written in.",
    )
    nats: NatsConfig = Field(default_factory=NatsConfig, title="NATS", description="Broker.")
    detector: DetectorConfig = Field(
        default_factory=OpenVinoDetectorConfig,
        title="Detector",
        description="Backend, model and thresholds; the keys besides the shared ones (model, "
        "confidence, iou, imgsz, threads) depend on the backend (openvino when left out).",
    )
    alerts: AlertsConfig = Field(
        default_factory=AlertsConfig, title="Alerts", description="Retention and de-duplication."
    )
    schedules: dict[str, list[ScheduleWindow]] = Field(
        default_factory=dict,
        title="Schedules",
        description="Named lists of weekly windows rules can be limited to.",
    )
    grids: list[GridConfig] = Field(
        default_factory=list, title="Grids", description="Areas of responsibility."
    )
    cameras: list[CameraConfig] = Field(
        default_factory=list, title="Cameras", description="The cameras this deployment runs."
    )
    registry: RegistryConfig = Field(
        default_factory=RegistryConfig,
        title="Camera registry",
        description="Take cameras from the live registry instead of 'cameras'.",
    )
    users: list[UserConfig] = Field(
        default_factory=list,
        title="Users",
        description="NATS logins of people and services (`gridwatch nats-config` turns them "
        "into server permissions).",
    )
    cases: CasesConfig = Field(
        default_factory=CasesConfig,
        title="Cases",
        description="Deadlines, escalation and retention of alert cases.",
    )
    notify: NotifyConfig = Field(
        default_factory=NotifyConfig,
        title="Notifications",
        description="Web Push, webhooks and snapshot privacy for responders.",
    )
    analysis: AnalysisConfig = Field(
        default_factory=AnalysisConfig,
        title="Analysis",
        description="Motion gate, region detection, batching and adaptive decode: detector "
        "work only where something moves.",
    )
    metrics: MetricsConfig = Field(
        default_factory=MetricsConfig,
        title="Metrics",
        description="Prometheus /metrics endpoint of the worker.",
    )
    leases: LeaseConfig = Field(
        default_factory=LeaseConfig,
        title="Leases",
        description="Share cameras across many workers: each runs the ones it holds a lease on "
        "(docs/scaling.md).",
    )
    console: ConsoleConfig = Field(
        default_factory=ConsoleConfig,
        title="Console",
        description="The command-centre console and responder view (`gridwatch console`).",
    )
    gb28181: Gb28181Settings | None = Field(
        default=None,
        title="GB/T 28181 cascade",
        description="Alarms to a superior GB/T 28181 platform as a lower platform "
        "(`gridwatch gb28181 serve`, docs/gb28181.md).",
    )
    stats: StatsConfig = Field(
        default_factory=StatsConfig,
        title="Statistics",
        description="People-flow statistics per camera and minute (stream GW_STATS, "
        "docs/statistics.md).",
    )

    @field_validator("timezone")
    @classmethod
    def _known_tz(cls, v: str) -> str:
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    def tzinfo(self) -> dt.tzinfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def grid(self, grid_id: str) -> GridConfig:
        for g in self.grids:
            if g.id == grid_id:
                return g
        raise KeyError(grid_id)
