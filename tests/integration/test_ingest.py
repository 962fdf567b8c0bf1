"""The PyAV reader on real media: files at native rate, RTSP, reconnects, corrupt data."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gridwatch.ingest.reader import Backoff, CameraReader, StreamState

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


def wait_for(cond, timeout: float, step: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())


@pytest.fixture
def readers():  # type: ignore[no-untyped-def]
    made: list[CameraReader] = []

    def make(*args, **kw) -> CameraReader:  # type: ignore[no-untyped-def]
        r = CameraReader(*args, **kw)
        made.append(r)
        r.start()
        return r

    yield make
    for r in made:
        r.stop(10)
        assert not r.alive


def test_file_plays_at_native_rate(readers) -> None:  # type: ignore[no-untyped-def]
    r = readers("cam", str(VTEST))
    assert wait_for(lambda: r.stats.frames_decoded > 0, 10)
    n0, t0 = r.stats.frames_decoded, time.monotonic()
    time.sleep(2.0)
    rate = (r.stats.frames_decoded - n0) / (time.monotonic() - t0)
    assert 7 <= rate <= 13, rate  # vtest is 10 fps: paced, not decoded as fast as possible
    raw = r.slot.take(2)
    assert raw is not None
    frame = raw.to_frame()
    assert frame.image.shape == (576, 768, 3)
    assert frame.camera_id == "cam"
    assert abs(frame.wall_ts - time.time()) < 5
    assert r.stats.codec
    assert r.stats.stream_fps == pytest.approx(10, abs=0.1)


def test_short_file_ends_and_looping_file_does_not(readers, demo_clip) -> None:  # type: ignore[no-untyped-def]
    clip = demo_clip(1.0)
    once = readers("once", str(clip))
    looped = readers("loop", str(clip), loop=True)
    assert wait_for(lambda: once.stats.state is StreamState.ENDED, 10)
    assert 8 <= once.stats.frames_decoded <= 12
    assert wait_for(lambda: looped.stats.frames_decoded > 25, 10)  # > 2 passes over 10 frames
    assert looped.stats.state is StreamState.ONLINE
    # pts keep the pace: frames arrive at about 10 fps across the loop point too
    assert looped.stats.frames_decoded < 60


def test_unreachable_camera_is_reported_and_retried(readers) -> None:  # type: ignore[no-untyped-def]
    r = readers("gone", "rtsp://127.0.0.1:9/nothing", open_timeout_s=2, backoff=Backoff(0.1, 0.2))
    assert wait_for(lambda: r.stats.failures >= 3, 10)
    assert r.stats.state in (StreamState.OFFLINE, StreamState.CONNECTING)
    # port 9 (discard) has no listener here: FFmpeg reports the refused TCP connection
    assert "connection refused" in r.stats.last_error.lower(), r.stats.last_error
    assert r.stats.frames_decoded == 0


def test_missing_file_is_reported(readers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = readers("nofile", str(tmp_path / "missing.mp4"), backoff=Backoff(0.1, 0.1))
    assert wait_for(lambda: r.stats.failures >= 1, 5)
    assert "not found" in r.stats.last_error


def test_corrupt_packets_are_skipped_and_counted(readers, demo_clip, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Garble bytes inside the H.264 payload: decoding goes on past the damage."""
    src = demo_clip(3.0).read_bytes()
    data = bytearray(src)
    # overwrite 1 KiB blocks spread over the media data (skip the first 40 KiB of headers/IDR)
    for off in range(40_000, len(data) - 2_000, 25_000):
        data[off : off + 1024] = bytes((i * 37) & 0xFF for i in range(1024))
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(bytes(data))
    r = readers("bad", str(bad))
    assert wait_for(lambda: r.stats.state is StreamState.ENDED, 15)
    # the reader survived and delivered most of the 30 frames
    assert r.stats.frames_decoded >= 15, r.stats
    assert r.stats.failures == 0
    assert r.stats.corrupt >= 1, r.stats  # counted, not fatal
    assert r.stats.packets == 30


def test_rtsp_stream_and_reconnect_after_server_restart(rtsp_server, demo_mp4) -> None:  # type: ignore[no-untyped-def]
    server = rtsp_server({"cam": demo_mp4}, loop=True)
    url = server.url("cam")
    reader = CameraReader("rtsp", url, open_timeout_s=3, read_timeout_s=3, backoff=Backoff(0.2, 1))
    reader.start()
    try:
        assert wait_for(lambda: reader.stats.frames_decoded > 5, 20)
        assert reader.stats.codec == "h264"
        port = server.port
        server.stop()
        assert wait_for(lambda: reader.stats.state is not StreamState.ONLINE, 15)
        n = reader.stats.frames_decoded
        restarted = rtsp_server({"cam": demo_mp4}, loop=True, port=port)
        assert restarted.url("cam") == url
        assert wait_for(lambda: reader.stats.frames_decoded > n + 5, 30), reader.stats
        assert reader.stats.opens >= 2
        assert reader.stats.state is StreamState.ONLINE
    finally:
        reader.stop(10)
    assert not reader.alive
