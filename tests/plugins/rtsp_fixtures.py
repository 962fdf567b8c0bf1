"""pytest fixtures for real RTSP cameras: GStreamer's RTSP server serving the real demo video.

Loaded through ``pytest_plugins`` in the root conftest (or ``-p tests.plugins.rtsp_fixtures``).
The demo video is converted once per machine and cached (``$GRIDWATCH_CACHE`` or
``~/.cache/gridwatch``); servers start in about 0.1 s, so each test gets its own, and each is
always stopped at teardown, also when the test fails. A machine without GStreamer's RTSP
server makes these fixtures error with the Debian packages to install: the tests that use
them are about real video and are not skipped.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import pytest

from gridwatch_devtools.media import demo_video
from gridwatch_devtools.rtsp_server import RtspServer


class RtspServerFactory(Protocol):
    """``rtsp_server({"cam": path}, loop=...)``: a started server, stopped at teardown."""

    def __call__(
        self, mounts: Mapping[str, Path], *, loop: bool | Mapping[str, bool] = True, **kw: Any
    ) -> RtspServer: ...


class DemoClipFactory(Protocol):
    """``demo_clip(duration_s=4, start_s=0)``: a cached cut of the demo video."""

    def __call__(self, duration_s: float, *, start_s: float = 0) -> Path: ...


@pytest.fixture(scope="session")
def demo_mp4() -> Path:
    """The whole demo video (vtest, 768×576, 10 fps, 79.5 s) as H.264 MP4, 2 s GOP."""
    return demo_video()


@pytest.fixture(scope="session")
def demo_clip() -> DemoClipFactory:
    """Short cuts of the demo video, for tests that need a stream to end soon."""

    def make(duration_s: float, *, start_s: float = 0) -> Path:
        return demo_video(start_s=start_s, duration_s=duration_s)

    return make


@pytest.fixture
def rtsp_server() -> Iterator[RtspServerFactory]:
    """Factory of started ``RtspServer``s; every one is stopped at teardown."""
    servers: list[RtspServer] = []

    def start(
        mounts: Mapping[str, Path], *, loop: bool | Mapping[str, bool] = True, **kw: Any
    ) -> RtspServer:
        server = RtspServer(mounts, loop=loop, **kw)
        servers.append(server)  # before start(): a half-started server is stopped too
        return server.start()

    yield start
    for server in reversed(servers):
        server.stop()
