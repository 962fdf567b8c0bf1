"""Probing real streams: what a good camera reports, and a clear reason for each bad one.

The good camera is GStreamer's RTSP server serving the real demo video. Two failure modes
need a peer that misbehaves on purpose, which no real server here can be told to do: a camera
that refuses the credentials (answers DESCRIBE with 401, the way cameras do) and a host that
accepts the TCP connection and then says nothing. Both are a few lines of socket code below;
what is under test is how FFmpeg's real reaction to them is reported.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from gridwatch.registry.probe import ProbeError, probe_stream
from tests.plugins.rtsp_fixtures import RtspServerFactory

pytestmark = pytest.mark.timeout(120)

EXE = str(Path(sys.executable).with_name("gridwatch"))


@pytest.fixture
def camera_url(rtsp_server: RtspServerFactory, demo_mp4: Path) -> str:
    return rtsp_server({"cam": demo_mp4}).url("cam")


@contextlib.contextmanager
def tcp_peer(behaviour: str) -> Iterator[int]:
    """A loopback peer: 'silent' accepts and never answers; '401' answers RTSP with 401."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(0.2)
    stop = threading.Event()
    conns: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            conns.append(conn)
            if behaviour == "401":
                threading.Thread(target=answer_401, args=(conn,), daemon=True).start()

    def answer_401(conn: socket.socket) -> None:
        buf = b""
        with contextlib.suppress(OSError):
            while data := conn.recv(4096):
                buf += data
                while b"\r\n\r\n" in buf:
                    req, buf = buf.split(b"\r\n\r\n", 1)
                    cseq = next(
                        (ln.split(b":", 1)[1].strip() for ln in req.split(b"\r\n")
                         if ln.lower().startswith(b"cseq")),
                        b"1",
                    )  # fmt: skip
                    if req.startswith(b"OPTIONS"):
                        conn.sendall(b"RTSP/1.0 200 OK\r\nCSeq: " + cseq + b"\r\n\r\n")
                    else:
                        conn.sendall(
                            b"RTSP/1.0 401 Unauthorized\r\nCSeq: " + cseq
                            + b'\r\nWWW-Authenticate: Digest realm="cam", nonce="n1"\r\n\r\n'
                        )  # fmt: skip

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for c in conns:
            c.close()
        srv.close()


def test_a_good_camera(camera_url: str, tmp_path: Path) -> None:
    snap = tmp_path / "snap.jpg"
    mask = [(0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (0.0, 0.5)]
    r = probe_stream(camera_url, timeout_s=10, gop_window_s=5, masks=[mask], snapshot=snap)
    assert (r.codec, r.width, r.height, r.fps) == ("h264", 768, 576, 10.0)
    assert (r.gop_frames, r.gop_s) == (20, 2.0)  # the demo video is encoded with -g 20
    assert 0 < r.open_s <= r.first_frame_s < 10
    img = cv2.imread(str(snap))
    assert img.shape == (576, 768, 3)
    assert img[:280, :380].max() < 30  # masked (JPEG noise aside)
    assert img[300:, 400:].mean() > 60  # the scene


@pytest.mark.parametrize(
    ("url", "kind", "says"),
    [
        ("rtsp://admin:s3cret@127.0.0.1:9/stream", "refused", "RTSP is usually 554"),
        ("{server}/no-such-path", "not_found", "no stream at that path"),
        ("/no/such/video.mp4", "file_missing", "no such video file"),
    ],
)
def test_bad_urls(camera_url: str, url: str, kind: str, says: str) -> None:
    url = url.replace("{server}", camera_url.rsplit("/", 1)[0])
    with pytest.raises(ProbeError) as info:
        probe_stream(url, timeout_s=3)
    assert info.value.kind == kind
    assert says in str(info.value)
    assert "s3cret" not in str(info.value)


def test_wrong_credentials() -> None:
    with tcp_peer("401") as port, pytest.raises(ProbeError) as info:
        probe_stream(f"rtsp://admin:wrong@127.0.0.1:{port}/s", timeout_s=3)
    assert info.value.kind == "auth"
    assert "user name or password" in str(info.value)
    assert "wrong" not in str(info.value)


def test_a_silent_host_times_out() -> None:
    with tcp_peer("silent") as port, pytest.raises(ProbeError) as info:
        probe_stream(f"rtsp://127.0.0.1:{port}/s", timeout_s=1)
    assert info.value.kind == "timeout"
    assert "did not answer within 1s" in str(info.value)


def test_no_video_stream(tmp_path: Path) -> None:
    audio = tmp_path / "audio.m4a"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=d=0.5", str(audio)],
        check=True,
        timeout=60,
    )
    with pytest.raises(ProbeError) as info:
        probe_stream(str(audio))
    assert info.value.kind == "no_video"


def test_cli_probe_json(camera_url: str, tmp_path: Path) -> None:
    snap = tmp_path / "p.jpg"
    out = subprocess.run(
        [
            EXE,
            "camera",
            "probe",
            camera_url,
            "--json",
            "--snapshot",
            str(snap),
            "--gop-window",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["ok"] is True
    assert (result["codec"], result["width"], result["gop_frames"]) == ("h264", 768, 20)
    assert result["sub_stream_configured"] is False
    assert snap.stat().st_size > 10_000
    assert np.frombuffer(snap.read_bytes()[:3], np.uint8).tolist() == [0xFF, 0xD8, 0xFF]
