"""Cameras as the console knows them: the config's and the live registry's, with their health.

* :class:`CameraDirectory`: the config's ``cameras`` overlaid with the ``gw_cameras`` registry
  (a camera added live shows up without a console restart), refreshed periodically. It answers
  which grid a camera belongs to (the scope check of the camera pages and of live video) and
  where its stream is (for the live view).
* :class:`HealthMonitor`: the workers' periodic reports on ``gw.v1.health.<camera>`` (a core
  subscription: health is a "latest value", not history), turned into online / offline /
  tamper / unknown. A camera whose last report is older than ``stale_s`` is offline: a worker
  that died reports nothing.

Stream URLs never leave the server (they may hold camera passwords).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Literal

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import BaseModel, ConfigDict, Field

from gridwatch.alerts.subjects import HEALTH_PREFIX, TOKEN_RE
from gridwatch.bus.messages import CameraHealth as HealthReport
from gridwatch.config import CameraConfig, GridwatchConfig
from gridwatch.ingest.urls import redact_text

log = logging.getLogger(__name__)

Status = Literal["online", "offline", "tamper", "unknown"]
MAX_REPORTS = 100_000


class CameraHealth(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    status: Status = Field(description="online | offline | tamper | unknown (no report yet).")
    reason: str = Field(default="", description="Why offline, or the tamper kinds.")
    age_s: float | None = Field(default=None, description="Seconds since the last report.")
    analysis_fps: float | None = None
    seconds_since_frame: float | None = None
    count: int | None = Field(default=None, description="People counted at the last look.")
    tamper: list[str] = Field(default_factory=list)


class CameraView(BaseModel):
    """A camera as the browser sees it: no stream URLs."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    name: str
    grid_id: str
    lat: float | None
    lon: float | None
    enabled: bool
    health: CameraHealth


class CameraDirectory:
    """The cameras of the config and the registry, by id."""

    def __init__(
        self,
        config: GridwatchConfig,
        nc: NATS | None = None,
        *,
        refresh_s: float = 15.0,
        live_sub_stream: bool = True,
    ) -> None:
        self.config = config
        self.nc = nc
        self.refresh_s = refresh_s
        self.live_sub_stream = live_sub_stream
        self.cameras: dict[str, CameraConfig] = {c.id: c for c in config.cameras}
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        """Re-read the registry (if the bucket exists); the config's cameras stay as a base."""
        if self.nc is None:
            return
        from gridwatch.registry.store import CameraRegistry, RegistryError

        cams = {c.id: c for c in self.config.cameras}
        try:
            reg = await CameraRegistry.open(self.nc.jetstream(), create=False, op_timeout=5.0)
            for record in await reg.cameras():
                cams[record.camera.id] = record.camera
        except RegistryError:
            pass  # no registry bucket: the config's cameras are all there is
        except Exception as e:
            log.warning("camera registry not read (%s); keeping the last list", e)
            return
        self.cameras = cams

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._loop(), name="console-cameras")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("camera list refresh failed: %s", e)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    def get(self, camera_id: str) -> CameraConfig | None:
        return self.cameras.get(camera_id)

    def grid_of(self, camera_id: str) -> str | None:
        cam = self.cameras.get(camera_id)
        return cam.grid if cam is not None else None

    def live_url(self, camera_id: str) -> str | None:
        """The stream the live view relays (the sub-stream when configured so)."""
        cam = self.cameras.get(camera_id)
        if cam is None or not TOKEN_RE.fullmatch(camera_id):
            return None
        if self.live_sub_stream and cam.sub_url:
            return cam.sub_url
        return cam.url


class HealthMonitor:
    """The latest health report of every camera, from ``gw.v1.health.*``."""

    def __init__(
        self,
        nc: NATS | None,
        *,
        stale_s: float = 35.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.nc = nc
        self.stale_s = stale_s
        self.clock = clock
        self.reports: dict[str, tuple[float, HealthReport]] = {}
        self._sub: Subscription | None = None

    async def start(self) -> None:
        if self.nc is not None:
            self._sub = await self.nc.subscribe(f"{HEALTH_PREFIX}.*", cb=self._on_msg)

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    async def _on_msg(self, msg: Msg) -> None:
        camera_id = msg.subject.rsplit(".", 1)[-1]
        try:
            data = json.loads(msg.data)
        except ValueError:
            return
        if isinstance(data, dict):
            self.observe(camera_id, data)

    def observe(self, camera_id: str, report: HealthReport | dict[str, Any]) -> None:
        if camera_id not in self.reports and len(self.reports) >= MAX_REPORTS:
            return
        if not isinstance(report, HealthReport):
            parsed = HealthReport.from_dict({"camera_id": camera_id, **report})
            if parsed is None:
                return
            report = parsed
        self.reports[camera_id] = (self.clock(), report)

    def health(self, camera_id: str) -> CameraHealth:
        got = self.reports.get(camera_id)
        if got is None:
            return CameraHealth(status="unknown", reason="no health report yet")
        at, r = got
        age = round(self.clock() - at, 1)
        tamper = list(r.tamper)
        common: dict[str, Any] = {
            "age_s": age,
            "analysis_fps": r.analysis_fps,
            "seconds_since_frame": r.seconds_since_frame,
            "count": r.count,
            "tamper": tamper,
        }
        if age > self.stale_s:
            return CameraHealth(status="offline", reason=f"no report for {age:.0f} s", **common)
        if tamper:
            return CameraHealth(status="tamper", reason=", ".join(tamper), **common)
        if r.online:
            return CameraHealth(status="online", **common)
        reason = redact_text(str(r.last_error or r.state or "offline"))[:200]
        return CameraHealth(status="offline", reason=reason, **common)

    def view(self, cam: CameraConfig) -> CameraView:
        return CameraView(
            id=cam.id,
            name=cam.name or cam.id,
            grid_id=cam.grid,
            lat=cam.lat,
            lon=cam.lon,
            enabled=cam.enabled,
            health=self.health(cam.id),
        )
