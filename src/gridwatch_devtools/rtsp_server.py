"""A real RTSP camera server for the demo and the tests, driven from the virtualenv.

Principle 9 (DESIGN.md): tests pull from a real RTSP server serving real video. The server is
GStreamer's gst-rtsp-server, reachable from Python only through Debian's ``python3-gi``, which
is not (and cannot sensibly be) installed in the virtualenv. So ``RtspServer`` runs the
stdlib-plus-gi script ``gst_rtsp_serve.py`` with ``/usr/bin/python3`` as a child process and
talks to it over a tiny line protocol on stdout (``READY <url>``, ``EOS <name>``).

Lifetime rules, because a leaked server keeps a port and a core busy on a 2-core machine:

* the child runs in its own session/process group and is always terminated (SIGTERM, then
  SIGKILL after a grace period), from ``stop()``, ``__exit__`` and failed starts alike;
* the child exits by itself when its stdin closes, i.e. when this process dies, even by
  SIGKILL, so nothing lingers after a crashed test run;
* both pipes are drained by threads, so a chatty GStreamer cannot block the child on a full
  pipe, and the last stderr lines are kept for error messages.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Self

__all__ = ["DEFAULT_PYTHON", "RtspServer", "RtspServerError"]

log = logging.getLogger(__name__)

#: Debian's interpreter, the one that can ``import gi`` with the GstRtspServer typelib.
DEFAULT_PYTHON = "/usr/bin/python3"
SCRIPT = Path(__file__).with_name("gst_rtsp_serve.py")

# Exit codes of gst_rtsp_serve.py (kept in sync by hand: the script cannot import us).
_EXIT_USAGE = 2
_EXIT_NO_GI = 3
_EXIT_NO_ELEMENT = 4
_EXIT_BIND = 5

_APT_HINT = (
    "apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 "
    "gstreamer1.0-plugins-good gstreamer1.0-plugins-bad"
)
_BIND_RETRIES = 3
_STDERR_TAIL = 40


class RtspServerError(RuntimeError):
    """The RTSP server child could not start, or died; the message carries its stderr tail."""


def _free_port(host: str) -> int:
    """A port that was free a moment ago (gst-rtsp-server cannot bind port 0 and tell us).

    The tiny race with other processes is handled by retrying on a bind failure.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _valid_name(name: str) -> bool:
    return bool(name) and all(c.isalnum() or c in "-_." for c in name)


class RtspServer:
    """Serve MP4 (H.264) files as RTSP cameras ``rtsp://host:port/<name>`` without re-encoding.

    ``loop`` is one flag for every mount or a per-mount mapping (mounts it leaves out loop).
    A looping mount plays forever with timestamps that keep increasing. A non-looping mount
    plays its file once, from its first client's connection; then clients see end of stream
    and the mount disappears (new clients get 404), like a camera that went dark. Each mount's
    media is shared: all its clients see the same pipeline, as with a real camera.

    Use as a context manager, or call ``start()`` / ``stop()``.
    """

    def __init__(
        self,
        mounts: Mapping[str, Path],
        *,
        loop: bool | Mapping[str, bool] = True,
        host: str = "127.0.0.1",
        port: int | None = None,
        python: str | os.PathLike[str] = DEFAULT_PYTHON,
        start_timeout_s: float = 20.0,
        stop_timeout_s: float = 5.0,
    ) -> None:
        if not mounts:
            raise ValueError("RtspServer needs at least one mount")
        for name, path in mounts.items():
            if not _valid_name(name):
                raise ValueError(f"mount name {name!r}: use letters, digits, '-', '_', '.'")
            if not Path(path).is_file():
                raise FileNotFoundError(f"mount {name!r}: no such file {path}")
        if isinstance(loop, Mapping):
            unknown = set(loop) - set(mounts)
            if unknown:
                raise ValueError(f"loop names unknown mounts {sorted(unknown)}")
            self._loop = {name: bool(loop.get(name, True)) for name in mounts}
        else:
            self._loop = dict.fromkeys(mounts, bool(loop))
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"port must be 1..65535 or None, got {port}")
        self._mounts = {name: Path(path).resolve() for name, path in mounts.items()}
        self._host = host
        self._fixed_port = port
        self._python = os.fspath(python)
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s

        self._port: int | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._threads: list[threading.Thread] = []
        self._cond = threading.Condition()
        self._urls: dict[str, str] = {}
        self._ended: set[str] = set()
        self._stderr: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL)
        self._stopping = False
        self.ready_s: float | None = None
        """Seconds from ``start()`` to the last READY line (for benchmarks and logs)."""

    # -- public API ------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("RtspServer is not started")
        return self._port

    @property
    def pid(self) -> int | None:
        """The child's pid while it runs (tests check it is gone after ``stop()``)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def urls(self) -> dict[str, str]:
        with self._cond:
            return dict(self._urls)

    def url(self, name: str) -> str:
        """``rtsp://host:port/name`` of a started mount."""
        if name not in self._mounts:
            raise KeyError(f"no mount {name!r}; mounts: {sorted(self._mounts)}")
        with self._cond:
            if name not in self._urls:
                raise RuntimeError("RtspServer is not started")
            return self._urls[name]

    def ended(self, name: str) -> bool:
        """Whether a non-looping mount has played to its end (and was removed)."""
        with self._cond:
            return name in self._ended

    def wait_ended(self, name: str, timeout_s: float) -> bool:
        """Wait until a non-looping mount has played to its end; False on timeout."""
        if name not in self._mounts:
            raise KeyError(f"no mount {name!r}")
        with self._cond:
            return self._cond.wait_for(lambda: name in self._ended, timeout=timeout_s)

    def start(self) -> Self:
        """Spawn the server and wait until every mount is served; raise RtspServerError if not.

        When no port was given, a free one is picked, and picked again if another process
        takes it before the child binds it.
        """
        if self._proc is not None:
            raise RuntimeError("RtspServer already started")
        t0 = time.monotonic()
        attempts = 1 if self._fixed_port is not None else _BIND_RETRIES
        for attempt in range(1, attempts + 1):
            port = self._fixed_port if self._fixed_port is not None else _free_port(self._host)
            try:
                self._spawn(port)
                self._wait_ready()
            except _BindError as e:
                self.stop()
                if attempt == attempts:
                    raise RtspServerError(str(e)) from None
                log.info("port %d was taken, retrying with another one", port)
                continue
            except BaseException:
                self.stop()
                raise
            break
        self.ready_s = time.monotonic() - t0
        log.info(
            "RTSP server pid %s on %s:%s ready in %.2f s: %s",
            self.pid,
            self._host,
            self._port,
            self.ready_s,
            ", ".join(f"{n} ({'loop' if self._loop[n] else 'once'})" for n in self._mounts),
        )
        return self

    def stop(self) -> None:
        """Terminate the child (SIGTERM, SIGKILL after the grace period); safe to repeat."""
        proc = self._proc
        if proc is None:
            return
        self._stopping = True
        try:
            if proc.poll() is None:
                # Signal the whole group (the child may have a gst-plugin-scanner), but only
                # while the leader is unreaped, so the group id cannot have been reused.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=self._stop_timeout_s)
                except subprocess.TimeoutExpired:
                    log.warning("RTSP server pid %d ignored SIGTERM: SIGKILL", proc.pid)
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=self._stop_timeout_s)
        finally:
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
            for t in self._threads:
                t.join(timeout=self._stop_timeout_s)
            self._threads = []
            self._proc = None
            self._stopping = False
            with self._cond:
                self._urls.clear()
                self._cond.notify_all()
            log.debug("RTSP server pid %d stopped (rc %s)", proc.pid, proc.returncode)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid} port={self._port}" if self.running else "stopped"
        return f"RtspServer({sorted(self._mounts)}, {state})"

    # -- child process ---------------------------------------------------------------------

    def _command(self, port: int) -> list[str]:
        # -I: ignore PYTHONPATH/PYTHONHOME and user site-packages of the (venv) environment,
        # which could shadow Debian's gi.
        cmd = [self._python, "-I", str(SCRIPT), "--host", self._host, "--port", str(port)]
        cmd.append("--watch-stdin")
        for name, path in self._mounts.items():
            cmd += ["--mount", f"{name}={path}:{'loop' if self._loop[name] else 'once'}"]
        return cmd

    def _spawn(self, port: int) -> None:
        self._port = port
        self._stderr.clear()
        with self._cond:
            self._urls.clear()
            self._ended.clear()
        cmd = self._command(port)
        log.debug("starting %s", " ".join(cmd))
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,  # never written: its closing tells the child we died
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                bufsize=1,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise RtspServerError(
                f"{self._python} not found: the RTSP server needs Debian's python3 with "
                f"GStreamer bindings ({_APT_HINT})"
            ) from None
        self._proc = proc
        assert proc.stdout is not None
        assert proc.stderr is not None
        self._threads = [
            threading.Thread(
                target=self._read_stdout,
                args=(proc.stdout,),
                daemon=True,
                name=f"rtsp-server-{proc.pid}-stdout",
            ),
            threading.Thread(
                target=self._read_stderr,
                args=(proc.stderr,),
                daemon=True,
                name=f"rtsp-server-{proc.pid}-stderr",
            ),
        ]
        for t in self._threads:
            t.start()

    def _read_stdout(self, stream: IO[str]) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in stream:
                word, _, arg = line.strip().partition(" ")
                with self._cond:
                    if word == "READY":
                        self._urls[arg.rsplit("/", 1)[-1]] = arg
                    elif word == "EOS":
                        self._ended.add(arg)
                        log.info("RTSP mount %s played to its end", arg)
                    else:
                        log.debug("rtsp server stdout: %s", line.rstrip())
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()  # EOF: wake waiters so they notice the death
            started = bool(self._urls)
        if started and not self._stopping:
            # Cameras vanished under the tests' feet: make it visible in their log.
            log.warning("RTSP server exited unexpectedly%s", self._stderr_tail())

    def _read_stderr(self, stream: IO[str]) -> None:
        with contextlib.suppress(OSError, ValueError):
            for raw in stream:
                line = raw.rstrip()
                self._stderr.append(line)
                noisy = " ERROR " in line or " WARNING " in line
                level = logging.WARNING if noisy else logging.DEBUG
                log.log(level, "rtsp server: %s", line)

    def _stderr_tail(self) -> str:
        if self._proc is not None and self._proc.poll() is not None:
            # Give the reader a moment to drain what the dead child wrote last.
            for t in self._threads[1:]:
                t.join(timeout=1.0)
        tail = "\n".join(self._stderr)
        return f"\n--- stderr of {self._python} {SCRIPT.name} ---\n{tail}" if tail else ""

    def _wait_ready(self) -> None:
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + self._start_timeout_s

        def done() -> bool:
            return len(self._urls) == len(self._mounts) or proc.poll() is not None

        with self._cond:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                # poll() is not a condition event: wake up now and then to check it.
                self._cond.wait(timeout=min(left, 0.1))
            ready = len(self._urls) == len(self._mounts)
        if ready:
            return
        rc = proc.poll()
        if rc is None:
            raise RtspServerError(
                f"RTSP server pid {proc.pid} not ready within {self._start_timeout_s:.0f} s"
                + self._stderr_tail()
            )
        tail = self._stderr_tail()
        if rc == _EXIT_BIND:
            raise _BindError(f"RTSP server cannot listen on {self._host}:{self._port}" + tail)
        if rc == _EXIT_NO_GI:
            raise RtspServerError(
                f"{self._python} cannot import GStreamer's RTSP server (gi/GstRtspServer); "
                f"install the Debian packages: {_APT_HINT}" + tail
            )
        if rc == _EXIT_NO_ELEMENT:
            raise RtspServerError(
                "GStreamer elements are missing (qtdemux, h264parse, rtph264pay); install: "
                f"{_APT_HINT}" + tail
            )
        what = "rejected its arguments" if rc == _EXIT_USAGE else "exited"
        raise RtspServerError(f"RTSP server {what} (rc {rc}) before it was ready" + tail)


class _BindError(RtspServerError):
    """The child could not bind its port (retried with another port when it was ours)."""
