"""The PyAV reader on real media: files at native rate, RTSP, reconnects, corrupt data."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
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


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="Linux scheduling policy")
def test_decoder_threads_do_not_preempt_analysis(readers) -> None:  # type: ignore[no-untyped-def]
    """Decoder threads run under SCHED_BATCH (their wake-ups do not preempt the detector's
    threads); the analysis threads keep the default policy."""
    r = readers("vtest", str(VTEST))
    assert wait_for(lambda: r.stats.frames_decoded > 0, 10)
    assert os.sched_getscheduler(r._thread.native_id) == os.SCHED_BATCH
    assert os.sched_getscheduler(0) == os.SCHED_OTHER


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


class FreezingProxy:
    """A TCP relay in front of the RTSP server that can stop forwarding while keeping every
    connection open: a camera whose stream goes silent without closing (a hung encoder, a
    half-dead link), which only a read timeout can notice."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.frozen = threading.Event()
        self._closed = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while not self._closed.is_set():
                data = src.recv(65536)
                if not data:
                    break
                while self.frozen.is_set() and not self._closed.is_set():
                    time.sleep(0.05)  # hold the data: the connection stays open and silent
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.close()

    def drop_connections(self) -> None:
        for s in self._conns:
            with contextlib.suppress(OSError):
                s.close()
        self._conns.clear()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        self.drop_connections()


def test_a_stream_that_goes_silent_without_closing_is_reopened(rtsp_server, demo_mp4) -> None:  # type: ignore[no-untyped-def]
    """Reads are bounded by FFmpeg's socket timeout (``rtsp_options``), not by PyAV's
    interrupt callback, which took the GIL several times per packet: this checks that a hung
    stream is still noticed within about ``read_timeout_s`` and reopened."""
    server = rtsp_server({"cam": demo_mp4}, loop=True)
    proxy = FreezingProxy(server.port)
    url = server.url("cam").replace(f":{server.port}/", f":{proxy.port}/")
    reader = CameraReader("hung", url, open_timeout_s=3, read_timeout_s=2, backoff=Backoff(0.2, 1))
    reader.start()
    try:
        assert wait_for(lambda: reader.stats.frames_decoded > 5, 20), reader.stats
        failures = reader.stats.failures
        proxy.frozen.set()
        frozen_at = time.monotonic()
        assert wait_for(lambda: reader.stats.failures > failures, 15), reader.stats
        noticed_s = time.monotonic() - frozen_at
        assert 1.0 <= noticed_s <= 8.0, noticed_s  # the 2 s read timeout, not a hang
        assert reader.stats.state is not StreamState.ONLINE
        proxy.frozen.clear()
        proxy.drop_connections()
        n = reader.stats.frames_decoded
        assert wait_for(lambda: reader.stats.frames_decoded > n + 5, 30), reader.stats
        assert reader.stats.opens >= 2
    finally:
        reader.stop(10)
        proxy.close()
    assert not reader.alive
