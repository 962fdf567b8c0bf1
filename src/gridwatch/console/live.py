"""The console's WebRTC live view: one decode per camera, shared by every viewer.

A browser posts an SDP offer (non-trickle: ICE gathering already complete) to
``POST /api/live/{camera_id}/offer`` and gets the answer back; video then flows over WebRTC
(VP8 preferred: about half the CPU of H.264 in aiortc). Per camera the hub keeps one
:class:`~gridwatch.console.live_source.LiveVideoSource` (one RTSP connection, one decoder
thread) and hands each viewer an unbuffered ``MediaRelay`` subscription to it, so a slow
viewer skips frames instead of delaying the others. Encoding is per viewer (aiortc encodes
per sender): that, not the decode, is what a viewer costs (docs/console.md, "Live view").

The source stops when the last viewer leaves: the browser hangs up (``DELETE
/api/live/{camera_id}/{session}``), its connection closes or fails (a closed tab ends in
``failed`` after ICE consent checks lapse), or it never connects within ``connect_timeout_s``.
Everything has a timeout: an unreachable camera answers the offer with 502 and a message
within ``open_timeout_s``, a stuck negotiation with 504.

Access: the console's middleware authenticates, checks CSRF and puts the
:class:`~gridwatch.auth.models.UserConfig` in ``request["user"]``. The routes add the grid
rule: a grid-scoped user (responder, grid leader) may only watch cameras of their own grid,
as told by the ``camera_grid`` callable given to :class:`LiveHub` (without it, grid-scoped
users are refused every camera: fail closed).

Privacy: every frame goes through the camera's privacy masks (``camera_masks``; see
:mod:`gridwatch.console.live_source`). Roles that get blurred snapshots (not in
``notify.full_snapshot_roles``) get the camera's :class:`BlurredVideoTrack` (people pixelated,
the whole picture when the detector has no fresh look), or a 403 with
``console.live_blurred_roles: refuse``. Every view is audited (``gw.v1.audit.view.<grid>``,
``what: live``, with the camera and whether it was blurred) before the answer goes out: no
record, no video (503).

All state lives in the :class:`LiveHub` instance; there are no module globals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Collection, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay

from gridwatch.auth.models import UserConfig
from gridwatch.console.live_ice import check_ice_host, restrict_host_candidates
from gridwatch.console.live_source import (
    BlurredVideoTrack,
    CameraUnavailable,
    FindPeople,
    LiveVideoSource,
    PeopleFinder,
)
from gridwatch.ingest.masks import PointNorm

__all__ = [
    "BadOffer",
    "CameraUnavailable",
    "LiveBusy",
    "LiveError",
    "LiveHub",
    "UnknownCamera",
    "register_live_routes",
]

log = logging.getLogger(__name__)

_CODEC_ORDER = ("video/VP8", "video/H264")
"""Codecs offered to browsers, cheapest to encode first; rtx (retransmission) rides along."""


class LiveError(Exception):
    """A live-view request that cannot be served; ``status`` is its HTTP status."""

    status = 500


class UnknownCamera(LiveError, LookupError):
    status = 404


class BadOffer(LiveError, ValueError):
    status = 400


class LiveBusy(LiveError):
    status = 503


class NegotiationTimeout(LiveError):
    status = 504


@dataclass
class _Feed:
    """One camera's shared decode and the sessions watching it."""

    camera_id: str
    source: LiveVideoSource
    relay: MediaRelay
    sessions: set[str] = field(default_factory=set)
    blurred: BlurredVideoTrack | None = None
    """People pixelated, for blurred roles: made with the first such viewer, shared."""
    blurred_relay: MediaRelay | None = None


@dataclass
class _Session:
    """One viewer's peer connection."""

    id: str
    camera_id: str
    viewer: str
    pc: RTCPeerConnection
    track: MediaStreamTrack
    started_mono: float
    watchdog: asyncio.Task[None] | None = None
    blurred: bool = False


class LiveHub:
    """Live WebRTC sessions of the console: one source per camera, one peer per viewer.

    ``resolve_url(camera_id)`` gives the stream to show (the console passes the camera's
    ``sub_url``, else its ``url``) or None for an unknown camera; ``camera_grid(camera_id)``
    gives its grid, for the grid rule of :meth:`may_view`. ``ice_host`` pins ICE host
    candidates to one local address (see :mod:`gridwatch.console.live_ice`); None offers
    every non-loopback address, aioice's default. No STUN server is used: viewers are on the
    command centre's network, and the console must work with no internet.
    """

    def __init__(
        self,
        resolve_url: Callable[[str], str | None],
        *,
        ice_host: str | None = None,
        camera_grid: Callable[[str], str | None] | None = None,
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 5.0,
        negotiate_timeout_s: float = 10.0,
        connect_timeout_s: float = 20.0,
        close_timeout_s: float = 5.0,
        max_viewers: int = 16,
        camera_masks: Callable[[str], Sequence[Sequence[PointNorm]]] | None = None,
        find_people: FindPeople | None = None,
    ) -> None:
        if max_viewers < 1:
            raise ValueError("max_viewers must be at least 1")
        self._resolve_url = resolve_url
        self._camera_grid = camera_grid
        self._camera_masks = camera_masks
        self._find_people = find_people
        self._blur_executor: ThreadPoolExecutor | None = None
        self._ice_host = check_ice_host(ice_host) if ice_host is not None else None
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.negotiate_timeout_s = negotiate_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.close_timeout_s = close_timeout_s
        self.max_viewers = max_viewers
        self._feeds: dict[str, _Feed] = {}
        self._sessions: dict[str, _Session] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.sources_started = 0
        """How many camera sources this hub has opened (one per camera while watched)."""

    # -- queries -----------------------------------------------------------------------------

    def knows(self, camera_id: str) -> bool:
        return self._resolve_url(camera_id) is not None

    def may_view(self, user: UserConfig, camera_id: str) -> bool:
        """Operators and admins see every camera; a grid-scoped user only their grid's."""
        if not user.grid_scoped:
            return True
        if self._camera_grid is None:
            return False
        grid = self._camera_grid(camera_id)
        return grid is not None and user.may_see_grid(grid)

    def grid_of(self, camera_id: str) -> str | None:
        return self._camera_grid(camera_id) if self._camera_grid is not None else None

    def viewers(self, camera_id: str) -> int:
        """Sessions on ``camera_id`` (negotiating or connected)."""
        feed = self._feeds.get(camera_id)
        return len(feed.sessions) if feed is not None else 0

    def source(self, camera_id: str) -> LiveVideoSource | None:
        """The running source of ``camera_id`` (its reader's stats say what it decodes)."""
        feed = self._feeds.get(camera_id)
        return feed.source if feed is not None else None

    def session_ids(self, camera_id: str | None = None) -> list[str]:
        return [s.id for s in self._sessions.values() if camera_id in (None, s.camera_id)]

    # -- offer/answer ------------------------------------------------------------------------

    async def answer(
        self, camera_id: str, sdp: str, type: str, viewer: str, *, blurred: bool = False
    ) -> dict[str, str]:
        """Answer a browser's offer for ``camera_id``: {"sdp", "type", "session"}.
        ``blurred``: the viewer gets people pixelated (see :class:`BlurredVideoTrack`).

        Raises :class:`UnknownCamera`, :class:`BadOffer`, :class:`CameraUnavailable` (502),
        :class:`LiveBusy` or :class:`NegotiationTimeout`; on any failure nothing is left
        running (the source too is stopped if this viewer would have been its only one).
        """
        if self._closed:
            raise LiveBusy("the live view is shutting down")
        url = self._resolve_url(camera_id)
        if url is None:
            raise UnknownCamera(f"no camera {camera_id!r}")
        if type != "offer" or not sdp.strip():
            raise BadOffer("expected an SDP offer")
        if len(self._sessions) >= self.max_viewers:
            raise LiveBusy(f"too many live viewers (at most {self.max_viewers}); try again later")
        started = time.monotonic()
        lock = self._locks.setdefault(camera_id, asyncio.Lock())
        async with lock:  # one source per camera, even when two viewers click at once
            feed = self._feeds.get(camera_id)
            if feed is None:
                feed = await self._open_feed(camera_id, url)
            session = self._new_session(feed, viewer, blurred=blurred)
        opened = time.monotonic()
        if self._closed:  # close() ran while the source was opening
            await self.hangup(session.id)
            raise LiveBusy("the live view is shutting down")
        try:
            async with asyncio.timeout(self.negotiate_timeout_s):
                local = await self._negotiate(session, RTCSessionDescription(sdp=sdp, type=type))
        except TimeoutError:
            await self.hangup(session.id)
            raise NegotiationTimeout(
                f"the live stream could not be set up within {self.negotiate_timeout_s:g} s"
            ) from None
        except BaseException:
            await self.hangup(session.id)
            raise
        log.info(
            "live: %s watches %s%s (session %s; source ready in %.0f ms, answer in %.0f ms)",
            viewer,
            camera_id,
            " blurred" if blurred else "",
            session.id[:8],
            1000 * (opened - started),
            1000 * (time.monotonic() - opened),
        )
        return {"sdp": local.sdp, "type": local.type, "session": session.id}

    async def _open_feed(self, camera_id: str, url: str) -> _Feed:
        source = LiveVideoSource(
            camera_id,
            url,
            open_timeout_s=self.open_timeout_s,
            read_timeout_s=self.read_timeout_s,
            masks=self._camera_masks(camera_id) if self._camera_masks is not None else (),
        )
        self.sources_started += 1
        try:
            await source.opened()
        except BaseException:
            self._spawn(source.join(self.read_timeout_s + 1))
            raise
        feed = _Feed(camera_id=camera_id, source=source, relay=MediaRelay())
        self._feeds[camera_id] = feed
        log.info("live: source %s opened", camera_id)
        return feed

    def _blurred_track(self, feed: _Feed) -> MediaStreamTrack:
        """A viewer's subscription to the camera's blurred track (made on first use)."""
        if feed.blurred is None or feed.blurred_relay is None:
            if self._find_people is None:
                self._find_people = PeopleFinder()
            if self._blur_executor is None:  # one look at a time, every camera together
                self._blur_executor = ThreadPoolExecutor(1, thread_name_prefix="live-blur")
            feed.blurred = BlurredVideoTrack(
                feed.relay.subscribe(feed.source, buffered=False),
                self._find_people,
                self._blur_executor,
            )
            feed.blurred_relay = MediaRelay()
        return feed.blurred_relay.subscribe(feed.blurred, buffered=False)

    def blurred_track(self, camera_id: str) -> BlurredVideoTrack | None:
        """The running blurred track of ``camera_id`` (its counters say what it did)."""
        feed = self._feeds.get(camera_id)
        return feed.blurred if feed is not None else None

    def _new_session(self, feed: _Feed, viewer: str, *, blurred: bool = False) -> _Session:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # [] : no (Google) STUN default
        track = (
            self._blurred_track(feed)
            if blurred
            else feed.relay.subscribe(feed.source, buffered=False)
        )
        session = _Session(
            id=secrets.token_urlsafe(16),
            camera_id=feed.camera_id,
            viewer=viewer,
            pc=pc,
            track=track,
            started_mono=time.monotonic(),
            blurred=blurred,
        )
        self._sessions[session.id] = session
        feed.sessions.add(session.id)

        def on_state() -> None:
            state = pc.connectionState
            log.debug("live session %s: %s", session.id[:8], state)
            if state in ("failed", "closed"):
                self._spawn(self.hangup(session.id))

        pc.on("connectionstatechange", on_state)
        session.watchdog = self._spawn(self._watch_connect(session))
        return session

    async def _negotiate(
        self, session: _Session, offer: RTCSessionDescription
    ) -> RTCSessionDescription:
        pc = session.pc
        # our transceiver first, so its codec preferences apply when the offer is matched
        transceiver = pc.addTransceiver("video", direction="sendonly")
        _prefer_cheap_codecs(transceiver)
        try:
            await pc.setRemoteDescription(offer)
        except Exception as exc:  # malformed SDP, or no codec in common
            raise BadOffer(f"the offer cannot be used: {exc}") from exc
        if transceiver.mid is None:
            raise BadOffer("the offer has no video to receive")
        transceiver.sender.replaceTrack(session.track)
        if self._ice_host is not None:
            restrict_host_candidates(pc, self._ice_host)
        await pc.setLocalDescription(await pc.createAnswer())
        local = pc.localDescription
        if local is None:  # pragma: no cover - aiortc sets it or raises
            raise LiveError("no local description")
        return local

    async def _watch_connect(self, session: _Session) -> None:
        """Hang up a viewer that never connects (closed the tab, blocked UDP)."""
        await asyncio.sleep(self.connect_timeout_s)
        if session.id in self._sessions and session.pc.connectionState != "connected":
            log.warning(
                "live session %s of %s on %s did not connect within %g s",
                session.id[:8],
                session.viewer,
                session.camera_id,
                self.connect_timeout_s,
            )
            await self.hangup(session.id)

    # -- hang up -----------------------------------------------------------------------------

    async def hangup(
        self, session_id: str, *, viewer: str | None = None, camera_id: str | None = None
    ) -> bool:
        """End one session; the last viewer of a camera stops its source. False when there
        is no such session (or it belongs to another viewer or camera, when those are given).
        """
        session = self._sessions.get(session_id)
        if session is None:
            return False
        if viewer is not None and session.viewer != viewer:
            return False
        if camera_id is not None and session.camera_id != camera_id:
            return False
        del self._sessions[session_id]
        session.track.stop()
        if session.watchdog is not None and session.watchdog is not asyncio.current_task():
            session.watchdog.cancel()
        feed = self._feeds.get(session.camera_id)
        last = False
        if feed is not None:
            feed.sessions.discard(session_id)
            if not feed.sessions:
                last = True
                del self._feeds[session.camera_id]
                if feed.blurred is not None:
                    feed.blurred.stop()
                feed.source.stop()
        log.info(
            "live: %s left %s after %.1f s%s",
            session.viewer,
            session.camera_id,
            time.monotonic() - session.started_mono,
            " (last viewer: source stopped)" if last else "",
        )
        try:
            # shielded: cancelling a close() that waits on aiortc's own (remote-initiated)
            # close would cancel the future that one completes, and break it
            await asyncio.wait_for(asyncio.shield(session.pc.close()), self.close_timeout_s)
        except TimeoutError:
            log.warning("live session %s: peer connection close timed out", session_id[:8])
        if last and feed is not None:
            await feed.source.join(self.read_timeout_s + 1)
        return True

    async def close(self) -> None:
        """Hang up every session and stop every source (console shutdown)."""
        self._closed = True
        await asyncio.gather(*(self.hangup(sid) for sid in list(self._sessions)))
        for feed in list(self._feeds.values()):  # sources with no session left (none expected)
            del self._feeds[feed.camera_id]
            await feed.source.join(self.read_timeout_s + 1)
        # hang-ups already under way (connection state changes) finish; nothing else is left
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        if tasks:
            _done, pending = await asyncio.wait(
                tasks, timeout=self.close_timeout_s + self.read_timeout_s + 2
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._blur_executor is not None:
            self._blur_executor.shutdown(wait=False, cancel_futures=True)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _prefer_cheap_codecs(transceiver: RTCRtpTransceiver) -> None:
    """VP8 first (≈ half the CPU of H.264 here), H.264 for browsers without VP8."""
    codecs = RTCRtpSender.getCapabilities("video").codecs
    ordered = [c for mime in _CODEC_ORDER for c in codecs if c.mimeType == mime]
    ordered += [c for c in codecs if c.mimeType == "video/rtx"]
    transceiver.setCodecPreferences(ordered)


# -- HTTP routes -----------------------------------------------------------------------------


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _user(request: web.Request) -> UserConfig | None:
    user = request.get("user")
    return user if isinstance(user, UserConfig) else None


LiveAudit = Callable[[web.Request, str, str | None, bool, str], Awaitable[bool]]
"""(request, camera id, grid, blurred, live session id) → whether the record was stored."""


async def _log_only_audit(
    request: web.Request, camera_id: str, grid: str | None, blurred: bool, session: str
) -> bool:
    user = _user(request)
    log.info(
        "AUDIT live view of %s (%s) by %s, %s (no audit stream: logged only)",
        camera_id,
        grid,
        user.name if user else None,
        "blurred" if blurred else "clear",
    )
    return True


async def _console_audit(
    request: web.Request, camera_id: str, grid: str | None, blurred: bool, session: str
) -> bool:
    from gridwatch.console.context import audit_or_log

    return await audit_or_log(
        request, "view", "live", grid, camera=camera_id, blurred=blurred, live_session=session[:8]
    )


def register_live_routes(
    app: web.Application,
    hub: LiveHub,
    *,
    full_roles: Collection[str] | None = None,
    blurred_roles: Literal["blur", "refuse"] | None = None,
    audit: LiveAudit | None = None,
) -> None:
    """Add the live-view API to the console app, and close ``hub`` on app shutdown.

    Roles in ``full_roles`` see the camera clear (masks painted); the others get people
    blurred, or 403 when ``blurred_roles`` is ``refuse``. Each view is audited by ``audit``
    before its answer goes out (503 and no video when that fails). In the console app they
    default to ``notify.full_snapshot_roles``, ``console.live_blurred_roles`` and the
    console's audit log (GW_AUDIT); elsewhere to operators only, blur, and a log line.

    ``POST /api/live/{camera_id}/offer`` with JSON ``{"sdp", "type": "offer"}`` answers
    ``{"sdp", "type", "session"}``; errors are JSON ``{"error": message}`` with 400 (bad
    offer), 401 (no user: the auth middleware did not run), 403 (a camera of another grid),
    404 (unknown camera), 502 (camera unreachable), 503 (too many viewers) or 504 (timeout).
    ``DELETE /api/live/{camera_id}/{session}`` hangs up one of the user's own sessions: 204,
    or 404 when there is no such session of theirs.
    """

    from gridwatch.console.context import CONSOLE
    from gridwatch.notify.settings import NotifyConfig

    console = app.get(CONSOLE)
    if console is not None:
        config = console.config
        full = frozenset(config.notify.full_snapshot_roles if full_roles is None else full_roles)
        refuse = (blurred_roles or config.console.live_blurred_roles) == "refuse"
        audit_view = audit or _console_audit
    else:
        full = frozenset(NotifyConfig().full_snapshot_roles if full_roles is None else full_roles)
        refuse = blurred_roles == "refuse"
        audit_view = audit or _log_only_audit

    async def offer(request: web.Request) -> web.StreamResponse:
        user = _user(request)
        if user is None:
            return _error(401, "log in first")
        camera_id = request.match_info["camera_id"]
        if not hub.knows(camera_id):
            return _error(404, f"no camera {camera_id!r}")
        if not hub.may_view(user, camera_id):
            return _error(403, f"camera {camera_id!r} is not in your grid")
        blurred = user.role not in full
        if blurred and refuse:
            return _error(403, f"live video is not shown to the {user.role} role")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "expected a JSON body {sdp, type}")
        if not isinstance(body, dict) or not all(
            isinstance(body.get(k), str) for k in ("sdp", "type")
        ):
            return _error(400, "expected a JSON body {sdp, type}")
        try:
            answer = await hub.answer(
                camera_id, body["sdp"], body["type"], viewer=user.name, blurred=blurred
            )
        except LiveError as exc:
            return _error(exc.status, str(exc))
        except CameraUnavailable as exc:
            log.warning("live: %s", exc)
            return _error(502, str(exc))
        # no record, no video: the browser cannot connect without this answer
        if not await audit_view(
            request, camera_id, hub.grid_of(camera_id), blurred, answer["session"]
        ):
            await hub.hangup(answer["session"])
            return _error(503, "the view could not be audited; try again later")
        return web.json_response(answer)

    async def hangup(request: web.Request) -> web.StreamResponse:
        user = _user(request)
        if user is None:
            return _error(401, "log in first")
        found = await hub.hangup(
            request.match_info["session"],
            viewer=user.name,
            camera_id=request.match_info["camera_id"],
        )
        return web.Response(status=204) if found else _error(404, "no such live session")

    async def on_shutdown(_app: web.Application) -> None:
        with contextlib.suppress(Exception):
            await hub.close()

    app.router.add_post("/api/live/{camera_id}/offer", offer)
    app.router.add_delete("/api/live/{camera_id}/{session}", hangup)
    app.on_shutdown.append(on_shutdown)
