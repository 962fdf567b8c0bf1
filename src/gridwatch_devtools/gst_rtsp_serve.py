"""Serve H.264 MP4 files as RTSP cameras with GStreamer's gst-rtsp-server.

Run with Debian's ``/usr/bin/python3``: ``python3-gi`` and the GStreamer typelibs live there,
not in the project's virtualenv, so this script imports nothing but the standard library and
``gi``. ``gridwatch_devtools.rtsp_server.RtspServer`` starts it and reads its stdout.

Why these choices:

* **No re-encoding** (``qtdemux ! h264parse ! rtph264pay``): serving a file costs under 1% of
  a core, so a test or demo can run many cameras next to a real detector.
* **Shared media**: every client of a mount sees one pipeline, like a real camera, and many
  viewers cost one pipeline. A late joiner waits for the next keyframe (the demo video has a
  2 s GOP). The media is declared unseekable, as a camera is: otherwise the ``Range: npt=0-``
  of a joining client's PLAY (ffmpeg sends one) rewinds the stream for everyone.
* **Looping** drops EOS on the demuxer's source pad and flush-seeks the demuxer to 0 (found
  on this machine: subclassing ``RTSPMedia`` from Python breaks, a non-flushing seek stalls).
  The flush-stop is rewritten to keep the running time and the pad's offset is advanced by
  the clip's length, so RTP timestamps keep increasing across loops like a real camera's
  clock instead of jumping back (clients that derive timestamps from pts keep working).
* **Once**: a non-looping mount plays its file once, from the first client's connection; at
  its end clients get RTCP BYE (ffmpeg/PyAV see end of stream) and the mount is removed, so
  a reconnecting client gets 404 as from a camera that went dark.

Protocol with the parent on stdout, one line each, flushed:
``READY rtsp://host:port/name`` per mount once the server listens; ``EOS <name>`` when a
once-mount has ended. Logs go to stderr. Exit codes: 0 clean stop (SIGTERM/SIGINT, or stdin
closed with ``--watch-stdin``), 2 usage, 3 python3-gi/GstRtspServer missing, 4 GStreamer
element missing, 5 cannot listen on the address.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

EXIT_NO_GI = 3
EXIT_NO_ELEMENT = 4
EXIT_BIND = 5

REQUIRED_ELEMENTS = {
    "filesrc": "gstreamer1.0-plugins-base (core)",
    "qtdemux": "gstreamer1.0-plugins-good",
    "rtph264pay": "gstreamer1.0-plugins-good",
    "h264parse": "gstreamer1.0-plugins-bad",
}

LAUNCH = (
    "( filesrc name=src ! qtdemux name=demux "
    "demux.video_0 ! h264parse config-interval=-1 "
    "! rtph264pay name=pay0 pt=96 config-interval=-1 )"
)

log = logging.getLogger("gst_rtsp_serve")


@dataclass(frozen=True)
class Mount:
    name: str
    path: str
    loop: bool


def parse_mount(spec: str, default_loop: bool) -> Mount:
    """``NAME=PATH[:loop|:once]`` -> Mount; the suffix overrides ``--loop/--no-loop``."""
    name, sep, rest = spec.partition("=")
    if not sep or not name or not rest:
        raise argparse.ArgumentTypeError(f"--mount wants NAME=PATH[:loop|:once], got {spec!r}")
    if not all(c.isalnum() or c in "-_." for c in name):
        raise argparse.ArgumentTypeError(f"mount name {name!r}: use letters, digits, - _ .")
    loop = default_loop
    path = rest
    base, colon, suffix = rest.rpartition(":")
    if colon and suffix in ("loop", "once"):
        path, loop = base, suffix == "loop"
    if not os.path.isfile(path):
        raise argparse.ArgumentTypeError(f"mount {name!r}: no such file {path!r}")
    return Mount(name=name, path=os.path.abspath(path), loop=loop)


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[Mount]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="TCP port (0 is not supported)")
    p.add_argument("--mount", action="append", required=True, metavar="NAME=PATH[:loop|:once]")
    p.add_argument("--loop", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--watch-stdin", action="store_true", help="exit when stdin closes")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if not 0 < args.port < 65536:
        p.error("--port must be 1..65535 (gst-rtsp-server cannot report a port 0 choice)")
    try:
        mounts = [parse_mount(m, args.loop) for m in args.mount]
    except argparse.ArgumentTypeError as e:
        p.error(str(e))
    names = [m.name for m in mounts]
    if len(set(names)) != len(names):
        p.error(f"duplicate mount names in {names}")
    return args, mounts


def import_gi() -> tuple[Any, Any, Any]:
    """Import Gst/GstRtspServer, or exit 3 with the Debian packages to install."""
    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GLib, Gst, GstRtspServer
    except (ImportError, ValueError) as e:
        print(
            f"gst_rtsp_serve: cannot import GStreamer RTSP server bindings ({e}); "
            "install: apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 "
            "gstreamer1.0-plugins-good gstreamer1.0-plugins-bad",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(EXIT_NO_GI)
    return GLib, Gst, GstRtspServer


class FileEnd:
    """Handles the end of one media's file: loop it, or report that it ended.

    Watches EOS on the demuxer's source pad, where it is certain and early: on the pipeline
    bus EOS comes only after every sink rendered it, and a client that got RTCP BYE may tear
    the media down before that.

    Looping drops EOS, flush-seeks to 0 and keeps the running time going. Dropping EOS keeps
    the sinks (and clients) alive. The seek runs on the main loop, never in the demuxer's
    streaming thread that delivered the EOS (seeking from there deadlocks).
    FLUSH_STOP(reset_time=True) from the seek would restart the pipeline's running time at 0
    and RTP timestamps would jump back, so it is replaced by FLUSH_STOP(False) and the pad's
    offset grows by the clip length at each loop.
    """

    def __init__(
        self, name: str, demux: Any, GLib: Any, Gst: Any, loop: bool, on_end: Callable[[], bool]
    ) -> None:
        self.name = name
        self.loop = loop
        self.on_end = on_end  # once-mounts: called on the main loop when the file ended
        self.demux = demux
        self.GLib = GLib
        self.Gst = Gst
        self.offset = 0  # ns added to running time of everything after the demuxer
        self.end = 0  # running time (ns) just past the last buffer pushed
        self.loops = 0
        self.lock = threading.Lock()
        self.seeking = False  # loop: between EOS and the end of our seek
        self.ended = False  # once: EOS seen
        demux.connect("pad-added", self.on_pad_added)

    def on_pad_added(self, demux: Any, pad: Any) -> None:
        Gst = self.Gst
        pad.add_probe(
            Gst.PadProbeType.EVENT_DOWNSTREAM
            | Gst.PadProbeType.EVENT_FLUSH
            | Gst.PadProbeType.BUFFER,
            self.on_probe,
        )

    def on_probe(self, pad: Any, info: Any) -> Any:
        Gst = self.Gst
        if info.type & Gst.PadProbeType.BUFFER:
            buf = info.get_buffer()
            # qtdemux's segment starts at 0 at rate 1, so pts is the running time before
            # the offset.
            if buf.pts != Gst.CLOCK_TIME_NONE:
                dur = buf.duration if buf.duration != Gst.CLOCK_TIME_NONE else 0
                with self.lock:
                    self.end = max(self.end, self.offset + buf.pts + dur)
            return Gst.PadProbeReturn.OK
        event = info.get_event()
        if event is None:
            return Gst.PadProbeReturn.OK
        if event.type == Gst.EventType.EOS and not self.loop:
            with self.lock:
                first, self.ended = not self.ended, True
            if first:
                self.GLib.idle_add(self.on_end)
            return Gst.PadProbeReturn.OK
        if event.type == Gst.EventType.EOS:
            with self.lock:
                if self.seeking:
                    return Gst.PadProbeReturn.DROP
                self.seeking = True
                self.offset = self.end
                self.loops += 1
                offset = self.offset
            log.info(
                "%s: end of file, loop %d (offset %.3f s)", self.name, self.loops, offset / 1e9
            )
            self.GLib.idle_add(self.seek, pad, offset)
            return Gst.PadProbeReturn.DROP
        if event.type == Gst.EventType.FLUSH_STOP:
            with self.lock:
                ours = self.seeking
            if ours and self.loop and event.parse_flush_stop():
                # Keep the running time: the new segment restarts at 0 and the pad offset
                # moves it to where the previous pass ended. PyGObject cannot replace the
                # probed event, so send the replacement and drop the original.
                pad.push_event(Gst.Event.new_flush_stop(False))
                return Gst.PadProbeReturn.DROP
            return Gst.PadProbeReturn.OK
        return Gst.PadProbeReturn.OK

    def seek(self, pad: Any, offset: int) -> bool:
        Gst = self.Gst
        pad.set_offset(offset)
        ok = self.demux.seek_simple(
            Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT, 0
        )
        with self.lock:
            self.seeking = False
        if not ok:
            log.error("%s: seek to 0 failed; the stream will stall", self.name)
        return False  # one-shot idle source


class Server:
    """One RTSPServer with a shared media factory per mount, run by a GLib main loop."""

    def __init__(
        self, host: str, port: int, mounts: list[Mount], GLib: Any, Gst: Any, GstRtspServer: Any
    ) -> None:
        self.GLib, self.Gst = GLib, Gst
        self.host, self.port, self.mounts = host, port, mounts
        self.loop = GLib.MainLoop()
        self.server = GstRtspServer.RTSPServer()
        self.server.set_address(host)
        self.server.set_service(str(port))
        self.points = self.server.get_mount_points()
        self.watches: list[
            FileEnd
        ] = []  # keep the Python probe owners alive while their media live
        for m in mounts:
            f = GstRtspServer.RTSPMediaFactory()
            f.set_launch(LAUNCH)
            f.set_shared(True)
            # Not seekable, like a camera. A client's PLAY carries a Range (ffmpeg sends
            # npt=0.000-); on a seekable shared media gst-rtsp-server seeks there and every
            # client already watching jumps back to the start. RTSPMedia declares media that
            # publish clock and offset (RFC 7273 SDP attributes, ignored by ffmpeg) unseekable.
            f.set_publish_clock_mode(GstRtspServer.RTSPPublishClockMode.CLOCK_AND_OFFSET)
            f.connect("media-configure", self.on_media_configure, m)
            self.points.add_factory(f"/{m.name}", f)

    def url(self, m: Mount) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"rtsp://{host}:{self.port}/{m.name}"

    def on_media_configure(self, factory: Any, media: Any, m: Mount) -> None:
        Gst = self.Gst
        bin_ = media.get_element()
        bin_.get_by_name("src").set_property("location", m.path)
        log.info("%s: new media for %s (%s)", m.name, m.path, "loop" if m.loop else "once")
        watch = FileEnd(
            m.name, bin_.get_by_name("demux"), self.GLib, Gst, m.loop, lambda: self._retire(m)
        )
        self.watches.append(watch)
        media.connect("unprepared", self.on_unprepared, watch)

    def on_unprepared(self, media: Any, watch: FileEnd) -> None:
        log.debug("%s: media unprepared", watch.name)
        if watch in self.watches:
            self.watches.remove(watch)

    def _retire(self, m: Mount) -> bool:
        """A once-mount's file ended: remove the mount (new clients get 404), tell the parent."""
        if self.points.match(f"/{m.name}")[0] is not None:
            self.points.remove_factory(f"/{m.name}")
            log.info("%s: end of file, mount removed", m.name)
            print(f"EOS {m.name}", flush=True)
        return False

    def run(self, watch_stdin: bool) -> int:
        GLib = self.GLib
        try:
            source = self.server.create_source(None)
        except GLib.Error as e:
            log.error("cannot listen on %s:%s: %s", self.host, self.port, e.message)
            return EXIT_BIND
        # create_source() binds and listens (so a taken port fails here, exit 5); once it
        # is attached the main loop accepts clients, and READY tells the parent so.
        source.attach(None)
        for sig in (signal.SIGTERM, signal.SIGINT):
            GLib.unix_signal_add(GLib.PRIORITY_HIGH, sig, self.on_signal, sig)
        if watch_stdin:
            GLib.io_add_watch(
                sys.stdin.fileno(),
                GLib.PRIORITY_DEFAULT,
                GLib.IOCondition.IN | GLib.IOCondition.HUP | GLib.IOCondition.ERR,
                self.on_stdin,
            )
        for m in self.mounts:
            print(f"READY {self.url(m)}", flush=True)
        log.info("listening on %s:%s", self.host, self.port)
        self.loop.run()
        source.destroy()
        return 0

    def on_signal(self, sig: int) -> bool:
        log.info("signal %d: stopping", sig)
        self.loop.quit()
        return False

    def on_stdin(self, fd: int, cond: Any) -> bool:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if data:
            return True  # nothing is expected on stdin; ignore it
        log.info("stdin closed (parent gone): stopping")
        self.loop.quit()
        return False


def main(argv: list[str] | None = None) -> int:
    args, mounts = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s gst_rtsp_serve %(levelname)s %(message)s",
    )
    GLib, Gst, GstRtspServer = import_gi()
    Gst.init(None)
    missing = {e: pkg for e, pkg in REQUIRED_ELEMENTS.items() if Gst.ElementFactory.find(e) is None}
    if missing:
        log.error(
            "missing GStreamer elements %s; install: apt-get install %s",
            sorted(missing),
            " ".join(sorted(set(missing.values()))),
        )
        return EXIT_NO_ELEMENT
    server = Server(args.host, args.port, mounts, GLib, Gst, GstRtspServer)
    return server.run(args.watch_stdin)


if __name__ == "__main__":
    sys.exit(main())
