"""Run a process tree inside a fresh, private network namespace (``unshare -n``).

Why: WebRTC between Chromium and aiortc on one machine only works over loopback (aioice leaves
127.0.0.1 out, so the console pins its candidates there; Chromium must not hide them behind
mDNS names), and a browser test must not send anything (mDNS, multicast, ICE probes) on this
machine's real interfaces. A fresh namespace has only ``lo``: everything the scenario starts
(RTSP server, console, Chromium) talks over it, and nothing can leave.

The pattern (as in ``tests/integration/onvif_netns_scenario.py``): the test runs a scenario
*script* with :func:`run_scenario`; the script starts what it needs, prints one JSON object
as its last stdout line, and the test asserts on it. Inside the script, call
:func:`require_private_netns` first: it refuses to run in the namespace the test started in.

Needs root (CAP_SYS_ADMIN) and util-linux ``unshare`` plus iproute2 ``ip``. Without them
:func:`netns_available` is False and the ``fresh_netns`` fixture fails the test: these tests
are about real networking and are never skipped, nor run outside a namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import pytest

REPO = Path(__file__).resolve().parents[2]
HOST_NETNS_ENV = "GRIDWATCH_HOST_NETNS"
"""Set by :func:`run_in_fresh_netns`: the inode of the namespace the test runs in."""

# bring lo up, then become the command: the namespace lives as long as the process tree
_LO_UP_THEN_EXEC = 'ip link set lo up && exec "$@"'


def netns_inode() -> str:
    """The inode of this process's network namespace (equal inodes: same namespace)."""
    return str(os.stat("/proc/self/ns/net").st_ino)


def netns_available() -> bool:
    """Whether this machine lets us create network namespaces (root and the tools)."""
    if not (shutil.which("unshare") and shutil.which("ip")):
        return False
    try:
        probe = subprocess.run(
            ["unshare", "-n", "--", "sh", "-c", _LO_UP_THEN_EXEC, "sh", "true"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def require_private_netns() -> None:
    """In a scenario script: exit (code 3) unless this is a namespace of its own, with lo up."""
    host = os.environ.get(HOST_NETNS_ENV)
    if host is None or host == netns_inode():
        print(json.dumps({"refused": "not inside a private network namespace"}), flush=True)
        raise SystemExit(3)
    flags = Path("/sys/class/net/lo/flags").read_text().strip()
    if not int(flags, 16) & 0x1:  # IFF_UP
        print(json.dumps({"refused": "lo is down in this namespace"}), flush=True)
        raise SystemExit(3)


class ScenarioFailed(AssertionError):
    """A scenario exited non-zero, timed out, or printed no JSON; carries its output."""


def run_in_fresh_netns(
    argv: Sequence[str],
    *,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    cwd: Path = REPO,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in a new network namespace with ``lo`` up; wait at most ``timeout_s``.

    The child gets its own process group; on timeout the whole group is killed (SIGKILL),
    then ``ScenarioFailed`` is raised with what it printed so far.
    """
    full_env = {**os.environ, **(env or {})}
    full_env[HOST_NETNS_ENV] = netns_inode()
    paths = [str(REPO), full_env.get("PYTHONPATH", "")]
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    cmd = ["unshare", "-n", "--", "sh", "-c", _LO_UP_THEN_EXEC, "sh", *argv]
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate(timeout=10)
        raise ScenarioFailed(
            f"{' '.join(argv)} ran past {timeout_s:g} s and was killed\n"
            f"--- stdout ---\n{out}\n--- stderr ---\n{err[-8000:]}"
        ) from None
    finally:
        # anything the scenario left behind in its group (only processes we started)
        if proc.returncode is not None:
            _kill_group(proc)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode is None:
        proc.wait(10)


def run_scenario(
    script: Path,
    *args: str,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run a Python scenario script in a fresh namespace; its last stdout line, as JSON.

    Raises ``ScenarioFailed`` (an AssertionError: the test fails) when the script exits
    non-zero or its last line is not a JSON object, with its stdout and stderr tail.
    """
    done = run_in_fresh_netns([sys.executable, str(script), *args], timeout_s=timeout_s, env=env)
    lines = done.stdout.strip().splitlines()
    report = f"--- stdout ---\n{done.stdout[-4000:]}\n--- stderr ---\n{done.stderr[-8000:]}"
    if done.returncode != 0:
        raise ScenarioFailed(f"{script.name} exited with {done.returncode}\n{report}")
    try:
        result = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        result = None
    if not isinstance(result, dict):
        raise ScenarioFailed(f"{script.name} printed no JSON object last\n{report}")
    return result


class ScenarioRunner(Protocol):
    """``fresh_netns(script, *args, timeout_s=...)``: the scenario's JSON result."""

    def __call__(
        self,
        script: Path,
        *args: str,
        timeout_s: float,
        env: Mapping[str, str] | None = None,
    ) -> dict[str, Any]: ...


@pytest.fixture(scope="session")
def fresh_netns() -> ScenarioRunner:
    """:func:`run_scenario`, after checking (once) that namespaces can be created here."""
    if not netns_available():
        pytest.fail(
            "needs root and util-linux `unshare` + iproute2 `ip` to create a network namespace"
        )
    return run_scenario
