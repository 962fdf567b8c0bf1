"""Adaptive decode: a reader switches to keyframes only and back, over real RTSP."""

from __future__ import annotations

import time

import pytest

from gridwatch.ingest.reader import CameraReader, RawFrame

pytestmark = pytest.mark.timeout(120)


def collect(reader: CameraReader, seconds: float) -> list[RawFrame]:
    out: list[RawFrame] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        raw = reader.slot.take(timeout=0.05)
        if raw is not None:
            out.append(raw)
    return out


def test_keyframe_mode_switches_both_ways(rtsp_server, demo_mp4) -> None:  # type: ignore[no-untyped-def]
    server = rtsp_server({"cam": demo_mp4})  # 10 fps, a keyframe every 2 s
    reader = CameraReader("cam", server.url("cam"))
    reader.start()
    try:
        assert collect(reader, 8.0), "no frames from the RTSP server"
        full = collect(reader, 2.5)
        assert len(full) >= 15  # ~10 fps
        assert not all(r.video_frame.key_frame for r in full)

        reader.set_keyframes_only(True)
        collect(reader, 0.3)  # a frame decoded before the switch may still be in the slot
        assert reader.stats.keyframes_only
        idle = collect(reader, 5.0)
        assert 1 <= len(idle) <= 4  # one per 2 s GOP
        assert all(r.video_frame.key_frame for r in idle)
        assert reader.stats.keyframe_interval_s == pytest.approx(2.0, abs=0.6)

        reader.set_keyframes_only(False)
        resumed = collect(reader, 4.5)
        assert not reader.stats.keyframes_only
        assert resumed[0].video_frame.key_frame  # back to every frame at a keyframe
        assert len(resumed) >= 15
        assert not all(r.video_frame.key_frame for r in resumed)
    finally:
        reader.stop(5)


def test_bgr_conversion_reuses_one_converter(demo_clip) -> None:  # type: ignore[no-untyped-def]
    reader = CameraReader("cam", str(demo_clip(1.0)))
    reader.start()
    try:
        raws = collect(reader, 1.5)
    finally:
        reader.stop(5)
    assert len(raws) >= 2
    frames = [r.to_frame() for r in raws[:2]]
    assert raws[0].reformatter is raws[1].reformatter is not None
    assert frames[0].image.shape == (576, 768, 3)
