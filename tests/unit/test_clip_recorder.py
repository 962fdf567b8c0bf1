"""A camera's own clip window (pure logic; the clip path runs for real in
tests/integration/test_clips.py)."""

from __future__ import annotations

from typing import Any

import pytest

from gridwatch.config import parse_config
from gridwatch.config.models import ClipsConfig
from gridwatch.worker.clips import GOP_MARGIN_S, ClipRecorder

CONFIG = """
grids: [{id: g1}]
alerts: {clips: {pre_s: 10, post_s: 10}}
cameras:
  - {id: gate, grid: g1, url: "rtsp://127.0.0.1:9/gate", clips: {pre_s: 30}}
  - {id: square, grid: g1, url: "rtsp://127.0.0.1:9/square"}
"""


async def test_a_camera_window_sizes_its_ring_and_falls_back_to_the_default() -> None:
    cfg = parse_config(CONFIG)
    store: Any = None  # rings need no store
    recorder = ClipRecorder(store, cfg.alerts.clips)
    gate, square = cfg.cameras
    ring = recorder.ring_for(gate.id, gate.clips.pre_s, gate.clips.post_s)
    assert ring.max_s == 30 + 10 + GOP_MARGIN_S
    ring = recorder.ring_for(square.id, square.clips.pre_s, square.clips.post_s)
    assert ring.max_s == 10 + 10 + GOP_MARGIN_S
    assert recorder.clip_for("gate", "ab12") == "gate/ab12.mp4"
    recorder.forget("gate")
    assert recorder.clip_for("gate", "ab12") is None  # a stopped camera names no clip


def test_a_camera_clip_key_that_does_not_exist_is_an_error() -> None:
    with pytest.raises(Exception, match="pre_roll"):
        parse_config(CONFIG.replace("pre_s: 30", "pre_roll: 30"))


def test_defaults() -> None:
    c = ClipsConfig()
    assert (c.enabled, c.pre_s, c.post_s) == (True, 10.0, 10.0)
