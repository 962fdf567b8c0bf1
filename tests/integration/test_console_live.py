"""The live view's hub and routes, with a real RTSP camera and aiortc on both ends.

The console side is :func:`register_live_routes` on a real aiohttp server; each viewer is a
Python ``RTCPeerConnection`` that offers to receive video, as a browser does, and reads the
decoded frames of the track it gets. Both ends pin their ICE host candidates to 127.0.0.1
(aioice leaves loopback out otherwise), so this runs in the test's own network namespace and
no packet leaves the machine. A small middleware stands in for the console's login: it puts
the user named in a test header into ``request["user"]``, as the real middleware does.

What must hold: two viewers of one camera share one RTSP connection and one decoder thread;
both get the scene's frames; one leaving keeps the other going; the last leaving stops the
decoder; unknown cameras, other grids and unreachable cameras get clear, prompt refusals.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from av import VideoFrame

from gridwatch.auth.models import UserConfig
from gridwatch.console.live import LiveHub, register_live_routes
from gridwatch.console.live_ice import restrict_host_candidates
from gridwatch_devtools.media import VTEST_SIZE
from tests.plugins.rtsp_fixtures import RtspServerFactory

pytestmark = [
    pytest.mark.timeout(120),
    # the console's contract: its middleware puts the user in request["user"] (a str key)
    pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning"),
]

HASH = "$2b$04$" + "a" * 53
USERS = {
    u.name: u
    for u in (
        UserConfig(name="op-ana", role="operator", password_hash=HASH),
        UserConfig(name="op-ben", role="operator", password_hash=HASH),
        UserConfig(name="aux-north", role="responder", grid="north", password_hash=HASH),
        UserConfig(name="aux-south", role="responder", grid="south", password_hash=HASH),
    )
}
WAIT_S = 20.0  # generous "eventually" budget for connecting and for frames


def decoder_threads(camera_id: str) -> list[threading.Thread]:
    """The live source's decoder thread(s) of a camera (CameraReader names them)."""
    return [t for t in threading.enumerate() if t.name == f"ingest-{camera_id}" and t.is_alive()]


async def eventually(check: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.05)
    return check()


@web.middleware
async def fake_login(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    user = USERS.get(request.headers.get("X-Test-User", ""))
    if user is not None:
        request["user"] = user
    return await handler(request)


@dataclass
class Console:
    hub: LiveHub
    base: str
    http: aiohttp.ClientSession
    cameras: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (url, grid)


@dataclass
class Viewer:
    pc: RTCPeerConnection
    session: str
    frames: list[VideoFrame] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None


@pytest.fixture
async def console() -> AsyncIterator[Console]:
    cameras: dict[str, tuple[str, str]] = {}
    hub = LiveHub(
        lambda cid: cameras[cid][0] if cid in cameras else None,
        ice_host="127.0.0.1",
        camera_grid=lambda cid: cameras[cid][1] if cid in cameras else None,
        open_timeout_s=2.0,
        read_timeout_s=3.0,
    )
    app = web.Application(middlewares=[fake_login])
    register_live_routes(app, hub)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    try:
        yield Console(hub, str(server.make_url("")), http, cameras)
    finally:
        await http.close()
        await hub.close()
        await server.close()


@pytest.fixture
def camera(rtsp_server: RtspServerFactory, demo_mp4: Path) -> str:
    return rtsp_server({"gate": demo_mp4}).url("gate")


@pytest.fixture
def silent_camera() -> Iterator[str]:
    """An RTSP address that accepts the connection and then never says a word."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        yield f"rtsp://127.0.0.1:{s.getsockname()[1]}/stream"


async def offer(
    console: Console, camera_id: str, user: str, sdp: str, type_: str = "offer"
) -> tuple[int, dict[str, Any]]:
    async with console.http.post(
        f"{console.base}/api/live/{camera_id}/offer",
        json={"sdp": sdp, "type": type_},
        headers={"X-Test-User": user},
    ) as resp:
        body: dict[str, Any] = await resp.json()
        return resp.status, body


async def new_offer() -> tuple[RTCPeerConnection, str]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    restrict_host_candidates(pc, "127.0.0.1")
    await pc.setLocalDescription(await pc.createOffer())
    assert pc.localDescription is not None
    return pc, pc.localDescription.sdp


def first_codec(sdp: str) -> str:
    """The codec the answer puts first on its video line (the one the sender uses)."""
    mline = next(line for line in sdp.splitlines() if line.startswith("m=video"))
    payload = mline.split()[3]
    prefix = f"a=rtpmap:{payload} "
    return next(line[len(prefix) :] for line in sdp.splitlines() if line.startswith(prefix))


async def read_frames(track: MediaStreamTrack, into: list[VideoFrame]) -> None:
    with contextlib.suppress(Exception):  # the track ends when either side hangs up
        while True:
            frame = await track.recv()
            assert isinstance(frame, VideoFrame)
            into.append(frame)


async def watch(console: Console, camera_id: str, user: str) -> Viewer:
    pc, sdp = await new_offer()
    tracks: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()
    pc.on("track", tracks.put_nowait)
    status, answer = await offer(console, camera_id, user, sdp)
    assert status == 200, answer
    await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
    assert first_codec(answer["sdp"]) == "VP8/90000"  # the cheapest to encode comes first
    candidates = [line for line in answer["sdp"].splitlines() if line.startswith("a=candidate")]
    assert candidates
    assert all(line.split()[4] == "127.0.0.1" for line in candidates), candidates  # ice_host
    viewer = Viewer(pc=pc, session=answer["session"])
    track = await asyncio.wait_for(tracks.get(), WAIT_S)
    viewer.reader = asyncio.ensure_future(read_frames(track, viewer.frames))
    return viewer


async def stop(viewer: Viewer) -> None:
    await viewer.pc.close()
    if viewer.reader is not None:
        viewer.reader.cancel()
        await asyncio.gather(viewer.reader, return_exceptions=True)


async def test_two_viewers_share_one_decode_and_the_last_one_out_stops_it(
    console: Console, camera: str
) -> None:
    console.cameras["gate"] = (camera, "north")
    first = await watch(console, "gate", "op-ana")
    second = await watch(console, "gate", "aux-north")  # a responder of the camera's grid
    try:
        assert console.hub.viewers("gate") == 2
        assert await eventually(lambda: len(first.frames) >= 5 and len(second.frames) >= 5), (
            f"frames: {len(first.frames)}, {len(second.frames)}"
        )
        # one source, one RTSP connection, one decoder thread, for both viewers
        source = console.hub.source("gate")
        assert source is not None
        assert console.hub.sources_started == 1
        assert source.reader.stats.opens == 1
        assert len(decoder_threads("gate")) == 1
        # the scene itself, at the camera's resolution, not a blank placeholder
        frame = first.frames[-1]
        assert (frame.width, frame.height) == VTEST_SIZE
        luma = frame.to_ndarray(format="gray")
        assert 40 < luma.mean() < 220
        assert luma.std() > 20

        # the first viewer hangs up; the other keeps receiving from the same source
        async with console.http.delete(
            f"{console.base}/api/live/gate/{first.session}", headers={"X-Test-User": "op-ben"}
        ) as resp:
            assert resp.status == 404  # not someone else's session
        async with console.http.delete(
            f"{console.base}/api/live/gate/{first.session}", headers={"X-Test-User": "op-ana"}
        ) as resp:
            assert resp.status == 204
        await stop(first)
        assert console.hub.viewers("gate") == 1
        before = len(second.frames)
        assert await eventually(lambda: len(second.frames) >= before + 5)
        assert console.hub.source("gate") is source
        assert source.reader.stats.opens == 1

        # the last viewer just closes its connection: the hub notices and stops the source
        await stop(second)
        assert await eventually(lambda: console.hub.viewers("gate") == 0)
        assert await eventually(lambda: not decoder_threads("gate"))
        assert console.hub.source("gate") is None
        assert source.readyState == "ended"
    finally:
        await stop(first)
        await stop(second)

    # a new viewer later opens a fresh source
    third = await watch(console, "gate", "op-ben")
    try:
        assert await eventually(lambda: len(third.frames) >= 3)
        assert console.hub.sources_started == 2
    finally:
        await stop(third)


async def test_refusals_are_prompt_and_clear(console: Console, camera: str) -> None:
    console.cameras["gate"] = (camera, "north")
    pc, sdp = await new_offer()
    try:
        status, body = await offer(console, "nope", "op-ana", sdp)
        assert (status, body["error"]) == (404, "no camera 'nope'")
        status, body = await offer(console, "gate", "aux-south", sdp)
        assert status == 403
        assert "not in your grid" in body["error"]
        status, body = await offer(console, "gate", "nobody", sdp)
        assert status == 401
        status, body = await offer(console, "gate", "op-ana", sdp, type_="answer")
        assert status == 400
        status, body = await offer(console, "gate", "op-ana", "v=0\r\nnot sdp\r\n")
        assert status == 400
        async with console.http.post(
            f"{console.base}/api/live/gate/offer",
            data=b"{not json",
            headers={"X-Test-User": "op-ana", "Content-Type": "application/json"},
        ) as resp:
            assert resp.status == 400
    finally:
        await pc.close()
    # none of these opened the camera, and the refused bad offers left nothing running
    assert await eventually(lambda: not decoder_threads("gate"))
    assert console.hub.viewers("gate") == 0
    assert console.hub.session_ids() == []


@pytest.mark.parametrize("kind", ["refused", "silent"])
async def test_an_unreachable_camera_answers_502_with_a_message(
    console: Console, silent_camera: str, kind: str
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    url = {
        "refused": f"rtsp://admin:s3cret@127.0.0.1:{closed_port}/stream",
        "silent": silent_camera,
    }[kind]
    console.cameras["dark"] = (url, "north")
    pc, sdp = await new_offer()
    try:
        # bounded by the hub's open timeout (2 s here), far inside this guard
        status, body = await asyncio.wait_for(offer(console, "dark", "op-ana", sdp), 20)
    finally:
        await pc.close()
    assert status == 502, body
    assert body["error"].startswith("camera dark ")
    assert "s3cret" not in body["error"]
    assert {
        "refused": "nothing accepts connections at 127.0.0.1",
        "silent": "127.0.0.1 did not answer within 2s",
    }[kind] in body["error"]
    assert console.hub.viewers("dark") == 0
    assert await eventually(lambda: not decoder_threads("dark"))


def test_without_camera_grid_grid_scoped_users_are_refused() -> None:
    """Fail closed: a hub that cannot tell a camera's grid shows it to no responder."""
    hub = LiveHub(lambda cid: "rtsp://127.0.0.1/x")
    assert hub.may_view(USERS["op-ana"], "gate")
    assert not hub.may_view(USERS["aux-north"], "gate")
    with pytest.raises(ValueError, match="ice_host must be an IP address"):
        LiveHub(lambda cid: None, ice_host="console.local")
