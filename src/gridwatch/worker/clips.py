"""The worker's evidence clips: a packet ring per camera, a clip stored after each raised alert.

Why here and not in the alert path: a clip needs ``post_s`` seconds of video after the
onset, so it cannot travel with the alert. The alert names the clip (``clip``, a name made
from the camera and the alert id, known at once); :meth:`ClipRecorder.schedule` waits until
the onset plus ``post_s``, cuts the ring's window (:mod:`gridwatch.alerts.clips`, a remux in a
thread, no encoder) and puts it in object store ``gw_clips`` with the alert's id, grid and
camera in its headers. Pending clips are bounded (``max_pending``; over it a clip is dropped
and counted); at shutdown the pending ones are cut at once with what the ring holds.

>>> clip_name("gate-9", "ab12")
'gate-9/ab12.mp4'
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nats.js import api as js_api
from nats.js.object_store import ObjectStore

from gridwatch.alerts.clips import Clip, ClipError, cut_clip
from gridwatch.bus.names import check_token
from gridwatch.config.models import ClipsConfig
from gridwatch.ingest.packet_ring import PacketRing
from gridwatch.model import Alert

log = logging.getLogger(__name__)

GOP_MARGIN_S = 4.0
"""Seconds a ring keeps beyond pre + post: the clip starts at the keyframe before the window."""

CLIP_ALERT_HEADER = "Gw-Alert"
CLIP_GRID_HEADER = "Gw-Grid"
CLIP_CAMERA_HEADER = "Gw-Camera"
CLIP_ONSET_HEADER = "Gw-Onset"
"""Epoch seconds of the onset; ``Gw-Pre-Roll`` is its offset in the clip, in seconds."""
CLIP_PRE_ROLL_HEADER = "Gw-Pre-Roll"
CLIP_SHORT_HEADER = "Gw-Pre-Roll-Short"
"""Present ("1") when the ring held less than ``pre_s`` before the onset."""
CLIP_MASKS_HEADER = "Gw-Masks"
"""JSON list of the camera's privacy-mask polygons (normalized ``[[x, y], ...]``) at the time
of the clip: the stored clip is the camera's own packets, so whoever serves it to people must
paint these first (issue 14, item 2). Absent: the camera had no masks."""


def clip_name(camera_id: str, alert_id: str) -> str:
    """The one naming scheme of clips: ``<camera>/<alert id>.mp4`` (deterministic, so a
    retried put overwrites)."""
    check_token(camera_id, "camera id")
    check_token(alert_id, "alert id")
    return f"{camera_id}/{alert_id}.mp4"


@dataclass
class ClipStats:
    stored: int = 0
    failed: int = 0
    dropped: int = 0
    """Not cut: more than ``max_pending`` clips were waiting."""
    short_pre_roll: int = 0
    last_latency_s: float = 0.0
    """From onset + post_s to the clip in the store, for the latest clip."""


class ClipRecorder:
    """Rings for the cameras, clips for the raised alerts (one per worker)."""

    def __init__(
        self,
        store: ObjectStore,
        settings: ClipsConfig,
        *,
        max_pending: int = 64,
        clock: Callable[[], float] = time.time,
        op_timeout_s: float = 30.0,
    ) -> None:
        self.store = store
        self.settings = settings
        self.max_pending = max_pending
        self.clock = clock
        self.op_timeout_s = op_timeout_s
        self.stats = ClipStats()
        self._rings: dict[str, PacketRing] = {}
        self._windows: dict[str, tuple[float, float]] = {}
        self._pending: set[asyncio.Task[None]] = set()
        self._closing = asyncio.Event()

    def ring_for(
        self, camera_id: str, pre_s: float | None = None, post_s: float | None = None
    ) -> PacketRing:
        """The camera's ring (made anew for each start of the camera); the reader writes every
        packet into it. ``pre_s``/``post_s``: the camera's own window (None: the default)."""
        s = self.settings
        window = (s.pre_s if pre_s is None else pre_s, s.post_s if post_s is None else post_s)
        ring = PacketRing(window[0] + window[1] + GOP_MARGIN_S, s.max_bytes_per_camera)
        self._rings[camera_id] = ring
        self._windows[camera_id] = window
        return ring

    def forget(self, camera_id: str) -> None:
        """The camera stopped: its ring's memory goes (pending clips keep their reference)."""
        self._rings.pop(camera_id, None)
        self._windows.pop(camera_id, None)

    def ring_bytes(self) -> dict[str, int]:
        """Bytes each camera's ring holds now (what clips cost in memory)."""
        return {cam: ring.size_bytes for cam, ring in self._rings.items()}

    def clip_for(self, camera_id: str, alert_id: str) -> str | None:
        """The clip name a raised alert carries (None: no ring for its camera)."""
        if camera_id not in self._rings:
            return None
        return clip_name(camera_id, alert_id)

    def schedule(
        self, alert: Alert, onset_ts: float, masks: Sequence[Sequence[Sequence[float]]] = ()
    ) -> bool:
        """Cut and store ``alert``'s clip ``post_s`` after ``onset_ts`` (epoch seconds);
        ``masks``: the camera's privacy-mask polygons, recorded with the clip."""
        ring = self._rings.get(alert.camera_id)
        if ring is None:
            return False
        if len(self._pending) >= self.max_pending:
            self.stats.dropped += 1
            log.warning("clip of alert %s dropped: %d clips pending", alert.id, len(self._pending))
            return False
        polygons = [[[float(x), float(y)] for x, y in m] for m in masks]
        window = self._windows.get(alert.camera_id, (self.settings.pre_s, self.settings.post_s))
        task = asyncio.create_task(self._record(alert, ring, onset_ts, polygons, window))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return True

    async def _record(
        self,
        alert: Alert,
        ring: PacketRing,
        onset_ts: float,
        masks: list[list[list[float]]],
        window: tuple[float, float],
    ) -> None:
        pre_s, post_s = window
        due = onset_ts + post_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), max(0.0, due - self.clock()))
        name = clip_name(alert.camera_id, alert.id)
        try:
            packets = ring.window(onset_ts - pre_s, due)
            clip = await asyncio.to_thread(cut_clip, packets, ring.params, onset_ts)
            await asyncio.wait_for(
                self._put(name, alert, clip, masks, short=clip.pre_roll_s < pre_s - 0.5),
                self.op_timeout_s,
            )
        except (ClipError, TimeoutError, OSError, ValueError) as e:
            self.stats.failed += 1
            log.warning("clip %s not stored: %s", name, e)
            return
        except Exception:  # the object store's own errors: logged, never fatal to the worker
            self.stats.failed += 1
            log.exception("clip %s not stored", name)
            return
        self.stats.stored += 1
        self.stats.last_latency_s = max(0.0, self.clock() - due)
        if clip.pre_roll_s < pre_s - 0.5:
            self.stats.short_pre_roll += 1
            log.warning(
                "clip %s: %.1f s before the onset of %.1f s asked (the camera's ring held "
                "%d bytes, bound %d; %d packets dropped for the bound)",
                name,
                clip.pre_roll_s,
                pre_s,
                ring.size_bytes,
                ring.max_bytes,
                ring.evicted_for_bytes,
            )
        log.info(
            "clip %s stored: %.1f s (%.1f s before the onset), %d bytes",
            name,
            clip.duration_s,
            clip.pre_roll_s,
            len(clip.mp4),
        )

    async def _put(
        self,
        name: str,
        alert: Alert,
        clip: Clip,
        masks: list[list[list[float]]],
        *,
        short: bool,
    ) -> None:
        headers = {
            CLIP_ALERT_HEADER: alert.id,
            CLIP_GRID_HEADER: alert.grid_id,
            CLIP_CAMERA_HEADER: alert.camera_id,
            CLIP_ONSET_HEADER: f"{clip.onset_ts:.3f}",
            CLIP_PRE_ROLL_HEADER: f"{clip.pre_roll_s:.3f}",
        }
        if short:
            headers[CLIP_SHORT_HEADER] = "1"
        if masks:
            headers[CLIP_MASKS_HEADER] = json.dumps(masks, separators=(",", ":"))
        meta = js_api.ObjectMeta(
            name=name,
            description="gridwatch alert evidence clip",
            headers={"Content-Type": ["video/mp4"], **{k: [v] for k, v in headers.items()}},
        )
        await self.store.put(name, clip.mp4, meta=meta)

    async def close(self, timeout_s: float = 10.0) -> None:
        """Cut the pending clips now, with what the rings hold, and wait for them."""
        self._closing.set()
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=timeout_s)
        for task in list(self._pending):
            task.cancel()
