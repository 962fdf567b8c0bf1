"""The packet ring's bounds (pure logic; the clip path is tested for real in
tests/integration/test_clips.py)."""

from __future__ import annotations

import pytest

from gridwatch.ingest.packet_ring import PacketRing, StreamParams

PARAMS = StreamParams("h264", 64, 48, b"", 10.0)


def fill(ring: PacketRing, seconds: float, *, size: int = 100, gop: int = 20) -> None:
    """``seconds`` of a 10 fps stream, a keyframe every ``gop`` packets, from t = 100."""
    for i in range(int(seconds * 10)):
        ring.add(b"x" * size, media_s=i / 10, wall_ts=100 + i / 10, keyframe=i % gop == 0)


def test_age_bound_drops_whole_groups_of_pictures() -> None:
    ring = PacketRing(max_s=5.0, max_bytes=10**9)
    ring.set_stream(PARAMS)
    fill(ring, 20)
    packets = ring.window(0, 1e9)
    assert packets[0].keyframe  # always starts decodable
    assert 119.9 - packets[0].wall_ts <= 5.0
    assert 119.9 - packets[0].wall_ts >= 5.0 - 2.0  # at most a GOP (2 s) less than max_s
    assert ring.evicted_for_bytes == 0


def test_byte_bound_keeps_memory_and_says_so() -> None:
    ring = PacketRing(max_s=60.0, max_bytes=10_000)
    ring.set_stream(PARAMS)
    fill(ring, 20, size=100)  # 20 s would be 20 000 bytes
    assert ring.size_bytes <= 10_000
    assert ring.window(0, 1e9)[0].keyframe
    assert ring.evicted_for_bytes > 0  # the pre-roll is shorter than max_s: counted


def test_window_starts_at_the_keyframe_before_and_ends_at_its_end() -> None:
    ring = PacketRing(max_s=60.0, max_bytes=10**9)
    ring.set_stream(PARAMS)
    fill(ring, 10)
    packets = ring.window(104.5, 106.0)
    assert packets[0].wall_ts == pytest.approx(104.0)  # the keyframe at 4 s (GOP 2 s)
    assert packets[-1].wall_ts == pytest.approx(106.0)


def test_nothing_before_the_first_keyframe_and_timestamps_always_rise() -> None:
    ring = PacketRing(max_s=60.0, max_bytes=10**9)
    ring.set_stream(PARAMS)
    ring.add(b"p", media_s=0.0, wall_ts=1.0, keyframe=False)  # undecodable alone
    assert len(ring) == 0
    ring.add(b"k", media_s=None, wall_ts=2.0, keyframe=True)  # RTSP: no pts on the first
    ring.add(b"p", media_s=None, wall_ts=2.1, keyframe=False)
    ring.add(b"p", media_s=0.05, wall_ts=2.2, keyframe=False)  # the clock went back
    media = [p.media_s for p in ring.window(0, 10)]
    assert media == sorted(media)
    assert len(set(media)) == 3


def test_a_different_stream_starts_afresh() -> None:
    ring = PacketRing(max_s=60.0, max_bytes=10**9)
    ring.set_stream(PARAMS)
    fill(ring, 3)
    ring.set_stream(PARAMS)  # the same stream reopened: kept
    assert len(ring) == 30
    ring.set_stream(StreamParams("h264", 1280, 720, b"", 25.0))
    assert len(ring) == 0


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_s"):
        PacketRing(max_s=0, max_bytes=1)
