"""Issue 14, item 1: a raised alert comes with a clip cut from the camera's own packets.

Real parts: GStreamer's RTSP server serving the demo video (vtest, H.264, 2 s GOP), a
nats-server with JetStream, the worker with the offline default model, PyAV to decode the
clip that came back from the object store.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import sys
import time
from pathlib import Path

import av
import pytest

from gridwatch.alerts.tail import iter_alerts
from gridwatch.bus.names import CLIP_BUCKET
from gridwatch.config import parse_config
from gridwatch.detectors import build_detector
from gridwatch.detectors.base import Detector
from gridwatch.model import IncidentState
from gridwatch.worker import Worker
from gridwatch.worker.clips import (
    CLIP_ALERT_HEADER,
    CLIP_GRID_HEADER,
    CLIP_MASKS_HEADER,
    CLIP_PRE_ROLL_HEADER,
    CLIP_SHORT_HEADER,
)
from gridwatch_devtools.nats_server import NatsServer
from tests.plugins.nats_fixtures import close_quietly, connect_flushed
from tests.plugins.rtsp_fixtures import RtspServerFactory

pytestmark = pytest.mark.timeout(240)

PRE_S, POST_S = 4.0, 3.0
CONFIG = """
grids:
  - id: g1
alerts:
  clips: {pre_s: PRE, post_s: POST}
cameras:
  - id: gate
    grid: g1
    url: "URL"
    analysis_fps: 2
    zones: [{id: all, polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]}]
    rules: [{type: crowding, zone: all, min_count: 1, min_duration_s: 5, clear_after_s: 60}]
    privacy_masks: [{id: home, polygon: [[0.84, 0.33], [1, 0.33], [1, 0.8], [0.84, 0.8]]}]
""".replace("PRE", str(PRE_S)).replace("POST", str(POST_S))


@pytest.fixture(scope="module")
def detector() -> Detector:
    return build_detector("default", 0.25, imgsz=640, threads=2)


async def test_raised_alert_names_a_clip_with_video_before_and_after_its_onset(
    nats_server: NatsServer,
    rtsp_server: RtspServerFactory,
    demo_mp4: Path,
    detector: Detector,
    tmp_path: Path,
) -> None:
    url = rtsp_server({"gate": demo_mp4}).url("gate")
    cfg = parse_config(CONFIG.replace("URL", url))
    stop = asyncio.Event()
    worker = Worker(cfg, nats_url=nats_server.url, detector=detector)
    task = asyncio.create_task(worker.run(stop))
    nc = await connect_flushed(nats_server.url)
    try:
        await asyncio.wait_for(worker.ready.wait(), 60)

        async def raised():  # type: ignore[no-untyped-def]
            async for alert in iter_alerts(nc, camera="gate", since=None):
                if alert.state is IncidentState.RAISED:
                    return alert
            return None

        alert = await asyncio.wait_for(raised(), 90)
        assert alert is not None
        assert alert.clip == f"gate/{alert.id}.mp4"
        raised_at = time.time()

        store = await nc.jetstream().object_store(CLIP_BUCKET)
        result = None
        while result is None and time.time() - raised_at < POST_S + 30:
            with contextlib.suppress(Exception):
                result = await store.get(alert.clip)
            if result is None:
                await asyncio.sleep(0.5)
        assert result is not None, "the clip never reached gw_clips"
        headers = {k: v[0] for k, v in (result.info.headers or {}).items()}
        assert headers[CLIP_ALERT_HEADER] == alert.id
        assert headers[CLIP_GRID_HEADER] == "g1"
        assert CLIP_SHORT_HEADER not in headers
        # the clip is the camera's own packets: whoever serves it must paint the masks
        assert json.loads(headers[CLIP_MASKS_HEADER]) == [
            [[0.84, 0.33], [1.0, 0.33], [1.0, 0.8], [0.84, 0.8]]
        ]
        onset = float(headers[CLIP_PRE_ROLL_HEADER])
        assert onset >= PRE_S  # from the keyframe at or before onset - pre_s

        with av.open(io.BytesIO(result.data)) as clip:
            stream = clip.streams.video[0]
            assert stream.codec_context.name == "h264"
            times = [float(f.time) for f in clip.decode(stream) if f.time is not None]
        assert times[0] == 0.0
        before = [t for t in times if t < onset]
        after = [t for t in times if t >= onset]
        # the demo streams at 10 fps: nearly every picture of the window is there
        assert len(before) >= 0.9 * 10 * PRE_S, len(before)
        assert len(after) >= 0.9 * 10 * POST_S, len(after)
        assert times == sorted(times)
        assert worker.clips is not None
        assert worker.clips.stats.stored >= 1

        # `gridwatch status` shows gw_clips' own limits, configured and applied
        cfg_file = tmp_path / "gridwatch.yaml"
        cfg_file.write_text(CONFIG.replace("URL", url), encoding="utf-8")
        proc = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("gridwatch")),
            "status",
            "-c",
            str(cfg_file),
            "--nats",
            nats_server.url,
            "--json",
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, out
        status = json.loads(out)
        assert status["retention_configured_days"]["clips"] == 7
        applied = status["streams"][f"OBJ_{CLIP_BUCKET}"]
        assert applied["max_age_days"] == 7
        assert applied["max_bytes"] == 8 * 1024**3
        assert applied["messages"] >= 2  # a clip: its chunks and its metadata
        print(
            f"clip {len(result.data)} bytes, {len(times)} pictures, onset at {onset:.1f} s "
            f"({len(before)} before, {len(after)} after); stored "
            f"{worker.clips.stats.last_latency_s:.2f} s after onset + post_s"
        )
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)
        await close_quietly(nc)
