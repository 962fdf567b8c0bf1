"""The RTSP camera server serves the real demo video to real RTSP clients (PyAV over TCP).

Frames are compared bit for bit with the file's own decoded frames: the server does not
re-encode, so an RTSP frame must be identical to a frame of the file. That proves real video,
tells which frame of the file a client got, and so whether media is shared and looping works.
Every blocking step has a timeout: PyAV's open/read timeouts, a wall-clock budget per read,
and pytest-timeout per test.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import av
import av.error
import pytest

from gridwatch import media_cache
from gridwatch_devtools.media import VTEST_FPS, VTEST_SIZE, MediaError, demo_video, vtest_path
from gridwatch_devtools.rtsp_server import RtspServer, RtspServerError
from tests.plugins.rtsp_fixtures import DemoClipFactory, RtspServerFactory

OPEN_READ_TIMEOUT = (10.0, 10.0)  # PyAV: (open, each read) in seconds
CLIP_S = 4.0


@dataclass
class Got:
    t: float  # seconds since the client started opening
    pts: int | None
    width: int
    height: int
    digest: str


@dataclass
class Reading:
    frames: list[Got] = field(default_factory=list)
    open_s: float = float("nan")
    end: str = "limit"  # limit | eof | error: <...>
    end_t: float = float("nan")
    t0: float = float("nan")  # time.monotonic() when the client started

    @property
    def first_t(self) -> float:
        return self.frames[0].t


def digest(frame: av.VideoFrame) -> str:
    return hashlib.blake2b(frame.to_ndarray().tobytes(), digest_size=8).hexdigest()


def file_digests(path: Path, limit: int | None = None) -> list[str]:
    with av.open(str(path)) as c:
        out = []
        for frame in c.decode(video=0):
            out.append(digest(frame))
            if limit is not None and len(out) >= limit:
                break
        return out


def read_rtsp(url: str, *, budget_s: float, max_frames: int | None = None) -> Reading:
    """Read frames until ``max_frames``, end of stream or ``budget_s`` after the first frame."""
    r = Reading()
    r.t0 = t0 = time.monotonic()
    try:
        with av.open(url, options={"rtsp_transport": "tcp"}, timeout=OPEN_READ_TIMEOUT) as c:
            r.open_s = time.monotonic() - t0
            for frame in c.decode(video=0):
                t = time.monotonic() - t0
                r.frames.append(Got(t, frame.pts, frame.width, frame.height, digest(frame)))
                if max_frames is not None and len(r.frames) >= max_frames:
                    break
                if t - r.first_t > budget_s:
                    break
            else:
                r.end = "eof"
    except (av.error.FFmpegError, OSError) as e:
        r.end = f"error: {type(e).__name__}: {e}"
    r.end_t = time.monotonic() - t0
    return r


def pid_alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie nobody reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture(scope="module")
def demo_head(demo_mp4: Path) -> list[str]:
    """Digests of the first 100 frames (10 s) of the demo video, decoded from the file."""
    return file_digests(demo_mp4, limit=100)


@pytest.mark.timeout(60)
def test_serves_the_real_video_frame_for_frame(
    rtsp_server: RtspServerFactory, demo_mp4: Path, demo_head: list[str]
) -> None:
    server = rtsp_server({"cam": demo_mp4})
    assert server.url("cam") == f"rtsp://127.0.0.1:{server.port}/cam"

    r = read_rtsp(server.url("cam"), budget_s=15, max_frames=60)

    assert len(r.frames) == 60, r.end
    assert {(g.width, g.height) for g in r.frames} == {VTEST_SIZE}
    # Not re-encoded: the first client of a fresh media gets the file from its first frame on.
    assert [g.digest for g in r.frames] == demo_head[:60]
    # Played in real time like a camera, not as fast as possible: frame 60 is 5.9 s of video
    # in. (PyAV's open probes for ~2.8 s and then hands over those frames at once.)
    assert 5.0 < r.frames[-1].t < 12.0, f"60 frames after {r.frames[-1].t:.2f} s"


@pytest.mark.timeout(60)
def test_two_clients_share_one_live_stream(
    rtsp_server: RtspServerFactory, demo_mp4: Path, demo_head: list[str]
) -> None:
    server = rtsp_server({"cam": demo_mp4})
    url = server.url("cam")
    readings: dict[str, Reading] = {}
    first_started = threading.Event()

    def client(name: str, delay_s: float) -> None:
        time.sleep(delay_s)
        first_started.set()
        readings[name] = read_rtsp(url, budget_s=15, max_frames=80 if name == "a" else 40)

    a = threading.Thread(target=client, args=("a", 0.0))
    a.start()
    assert first_started.wait(5)
    # b joins while a is reading (a reads for ~8 s): both are connected at once.
    b = threading.Thread(target=client, args=("b", 3.0))
    b.start()
    a.join(40)
    b.join(40)
    assert not a.is_alive()
    assert not b.is_alive()

    ra, rb = readings["a"], readings["b"]
    for r, n in ((ra, 80), (rb, 40)):
        assert len(r.frames) == n, r.end
        assert {(g.width, g.height) for g in r.frames} == {VTEST_SIZE}
    # Both were receiving at the same time.
    assert rb.t0 + rb.first_t < ra.t0 + ra.frames[-1].t
    # One shared pipeline: b joined the stream a started, at a later keyframe (2 s GOP),
    # instead of getting its own playback from frame 0.
    a_index = {d: i for i, d in enumerate(demo_head)}
    b_first = a_index.get(rb.frames[0].digest)
    assert b_first is not None, "b's first frame is not a frame of the video's first 10 s"
    assert b_first >= 20, f"b started at frame {b_first}: media not shared"
    assert b_first % 20 == 0, f"b started at frame {b_first}, not at a keyframe"
    # From there on b sees exactly the file's frames, and a was not sent back to the start
    # by b's PLAY (Range: npt=0-): a saw the file's frames 0..79 in order.
    assert [g.digest for g in rb.frames] == demo_head[b_first : b_first + 40]
    assert [g.digest for g in ra.frames] == demo_head[:80]


@pytest.mark.timeout(60)
def test_non_looping_mount_ends_with_its_clip(
    rtsp_server: RtspServerFactory, demo_clip: DemoClipFactory
) -> None:
    clip = demo_clip(CLIP_S)
    server = rtsp_server({"clip": clip}, loop=False)

    r = read_rtsp(server.url("clip"), budget_s=3 * CLIP_S + 10)

    n_clip = round(CLIP_S * VTEST_FPS)
    assert r.end in ("eof",) or r.end.startswith("error"), f"stream did not end: {r.end}"
    assert n_clip - 5 <= len(r.frames) <= n_clip, len(r.frames)
    # The end is the clip's end (RTCP BYE), not a read timeout: within 3 s of the last frame.
    assert r.end_t - r.frames[-1].t < 3.0, (r.end, r.end_t, r.frames[-1].t)
    assert r.end_t < CLIP_S + 8.0
    assert server.wait_ended("clip", timeout_s=5)
    # The camera is gone: a new client is refused instead of hanging.
    t0 = time.monotonic()
    with pytest.raises(av.error.FFmpegError, match="404"):
        av.open(server.url("clip"), options={"rtsp_transport": "tcp"}, timeout=OPEN_READ_TIMEOUT)
    assert time.monotonic() - t0 < 5.0
    assert server.running


@pytest.mark.timeout(60)
def test_looping_mount_keeps_delivering_past_the_clip_end(
    rtsp_server: RtspServerFactory, demo_clip: DemoClipFactory
) -> None:
    clip = demo_clip(CLIP_S)
    clip_frames = file_digests(clip)
    assert len(clip_frames) == round(CLIP_S * VTEST_FPS)
    server = rtsp_server({"clip": clip}, loop=True)

    watch_s = 2.5 * CLIP_S  # two loops and a half
    r = read_rtsp(server.url("clip"), budget_s=watch_s)

    assert r.end == "limit", r.end
    late = [g for g in r.frames if g.t - r.first_t > CLIP_S + 2.0]
    assert len(late) > 2 * VTEST_FPS, f"only {len(late)} frames after the clip's end"
    # Real time at 10 fps throughout (within 10 %), no stall at the loop points. (The first
    # frames, buffered while PyAV's open probed the stream, come in a burst: skip them.)
    live = [g for g in r.frames if g.t > r.first_t + 0.5]
    rate = (len(live) - 1) / (live[-1].t - live[0].t)
    assert abs(rate - VTEST_FPS) < 0.1 * VTEST_FPS, f"{rate:.2f} fps"
    gaps = [b.t - a.t for a, b in itertools.pairwise(live)]
    assert max(gaps) < 0.5, f"a {max(gaps):.2f} s stall"
    # It really is the clip again, frame for frame: frame 0 was seen on each pass.
    digests = [g.digest for g in r.frames]
    assert digests[: len(clip_frames)] == clip_frames
    assert digests.count(clip_frames[0]) >= 2
    second_pass = digests.index(clip_frames[0], 1)
    assert digests[second_pass : second_pass + 20] == clip_frames[:20]
    # Timestamps keep increasing across loops, like a camera's clock.
    pts = [g.pts for g in r.frames if g.pts is not None]
    assert len(pts) >= len(r.frames) - 2
    assert all(b > a for a, b in itertools.pairwise(pts)), "pts went back"


@pytest.mark.timeout(30)
def test_stop_leaves_no_process_and_frees_the_port(demo_mp4: Path) -> None:
    server = RtspServer({"cam": demo_mp4})
    with server:
        pid = server.pid
        port = server.port
        assert pid is not None
        assert pid_alive(pid)
        assert server.ready_s is not None
        assert server.ready_s < 10
    assert not server.running
    assert server.pid is None
    assert not pid_alive(pid)
    with socket.socket() as s:  # the listening socket is gone with the process
        s.bind(("127.0.0.1", port))
    server.stop()  # idempotent


@pytest.mark.timeout(30)
def test_child_is_stopped_when_the_with_block_raises(demo_mp4: Path) -> None:
    pids: list[int | None] = []

    def use_and_fail() -> None:
        with RtspServer({"cam": demo_mp4}) as server:
            pids.append(server.pid)
            raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        use_and_fail()
    assert pids[0] is not None
    assert not pid_alive(pids[0])


@pytest.mark.timeout(30)
def test_child_exits_when_its_parent_is_killed(demo_mp4: Path) -> None:
    """A test run killed with SIGKILL must not leave servers behind (stdin watch)."""
    code = (
        "import sys, time; from pathlib import Path\n"
        "from gridwatch_devtools.rtsp_server import RtspServer\n"
        "s = RtspServer({'cam': Path(sys.argv[1])}).start()\n"
        "print(s.pid, flush=True); time.sleep(60)\n"
    )
    src = Path(__file__).resolve().parents[2] / "src"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]),
    }
    parent = subprocess.Popen(
        [sys.executable, "-c", code, str(demo_mp4)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()  # bounded by the test timeout; the child prints fast
        child = int(line)
        assert pid_alive(child)
        parent.kill()
        parent.wait(10)
        assert wait_gone(child, 10), f"RTSP server {child} outlived its killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)


@pytest.mark.timeout(30)
def test_busy_fixed_port_is_a_clear_error(demo_mp4: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = RtspServer({"cam": demo_mp4}, port=port)
        with pytest.raises(RtspServerError, match=f"cannot listen on 127.0.0.1:{port}"):
            server.start()
        assert not server.running


@pytest.mark.timeout(30)
def test_python_without_gi_is_a_clear_error(demo_mp4: Path) -> None:
    # The virtualenv's interpreter has no python3-gi: the error says what to install.
    server = RtspServer({"cam": demo_mp4}, python=sys.executable)
    with pytest.raises(RtspServerError, match=r"python3-gi gir1\.2-gst-rtsp-server-1\.0"):
        server.start()
    assert not server.running


def test_bad_mounts_are_refused_before_spawning(tmp_path: Path, demo_mp4: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.mp4"):
        RtspServer({"cam": tmp_path / "nope.mp4"})
    with pytest.raises(ValueError, match="mount name"):
        RtspServer({"a/b": demo_mp4})
    with pytest.raises(ValueError, match="unknown mounts"):
        RtspServer({"cam": demo_mp4}, loop={"other": False})
    with pytest.raises(ValueError, match="at least one"):
        RtspServer({})


# -- the demo media ---------------------------------------------------------------------------


def test_demo_mp4_is_h264_with_2s_gop_and_no_b_frames(demo_mp4: Path) -> None:
    with av.open(str(demo_mp4)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.codec_context.width, stream.codec_context.height) == VTEST_SIZE
        assert stream.average_rate == VTEST_FPS
        packets = [p for p in c.demux(stream) if p.size]
    assert len(packets) == 795  # every frame of vtest.avi
    keys = [i for i, p in enumerate(packets) if p.is_keyframe]
    assert keys == list(range(0, 795, 2 * VTEST_FPS))
    pts = [p.pts for p in packets if p.pts is not None]
    assert len(pts) == len(packets)
    assert all(b > a for a, b in itertools.pairwise(pts)), "decode order != display order"
    with demo_mp4.open("rb") as f:
        head = f.read(64 * 1024)
    assert head.find(b"moov") < head.find(b"mdat"), "index not at the front (+faststart)"


@pytest.mark.timeout(120)
def test_demo_video_unpacks_gzipped_vtest_and_caches_each_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = vtest_path()
    doc = tmp_path / "doc"
    doc.mkdir()
    with real.open("rb") as src, gzip.open(doc / "vtest.avi.gz", "wb", compresslevel=1) as dst:
        shutil.copyfileobj(src, dst)
    monkeypatch.setattr(media_cache, "VTEST_DIR", doc)
    cache = tmp_path / "cache"

    clip = demo_video(cache, start_s=10, duration_s=1.5)

    assert (cache / "vtest.avi").read_bytes() == real.read_bytes()
    assert clip.name == "vtest-h264-v1-ss10-t1.5.mp4"
    with av.open(str(clip)) as c:
        frames = [f for f in c.decode(video=0)]
    assert len(frames) == 15
    assert (frames[0].width, frames[0].height) == VTEST_SIZE
    # Cached: the same call returns the same file without converting again.
    mtime = clip.stat().st_mtime_ns
    assert demo_video(cache, start_s=10, duration_s=1.5) == clip
    assert clip.stat().st_mtime_ns == mtime
    # Another cut is another file; nothing half-written is left behind.
    other = demo_video(cache, start_s=0, duration_s=1)
    assert other != clip
    assert sorted(p.name for p in cache.glob("*.mp4")) == sorted([clip.name, other.name])
    assert not list(cache.glob("*.tmp"))


def test_missing_opencv_doc_and_ffmpeg_are_clear_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(media_cache, "VTEST_DIR", tmp_path / "nowhere")
    with pytest.raises(MediaError, match="apt-get install opencv-doc"):
        vtest_path(tmp_path)
    monkeypatch.undo()
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg on PATH
    with pytest.raises(MediaError, match="apt-get install ffmpeg"):
        demo_video(tmp_path, duration_s=1)
    monkeypatch.undo()
    with pytest.raises(MediaError, match="no frames for the cut starting at 500 s"):
        demo_video(tmp_path, start_s=500, duration_s=1)
    assert not list(tmp_path.glob("*.mp4")), "a bad cut was cached"
