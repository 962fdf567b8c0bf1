"""Where gridwatch caches what it makes (exports of models, scenario clips, detections), and
OpenCV's ``vtest.avi``, the real footage the evaluation scenarios are cut from.

Product code (the exporters, ``gridwatch eval``) needs these; the demo and the test harnesses
(:mod:`gridwatch_devtools`) build on them, never the other way round.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

VTEST_DIR = Path("/usr/share/doc/opencv-doc/examples/data")
VTEST_SIZE = (768, 576)
VTEST_FPS = 10


class MediaError(RuntimeError):
    """The demo media cannot be found or produced; the message says what to install."""


def resolve_cache_dir(path: Path | None = None) -> Path:
    """The media cache: ``path``, else ``$GRIDWATCH_CACHE``, else ``~/.cache/gridwatch``."""
    if path is None:
        env = os.environ.get("GRIDWATCH_CACHE")
        path = Path(env) if env else Path.home() / ".cache" / "gridwatch"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _locked(target: Path) -> Iterator[None]:
    """Serialize producers of one cached file (parallel test workers) with a lock file."""
    lock = target.with_name(f".{target.name}.lock")
    with lock.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _atomic_target(target: Path) -> Path:
    """A temporary path next to ``target`` (same file system, so ``os.replace`` is atomic)."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache is shared like any downloaded file
    return Path(tmp)


def vtest_path(cache_dir: Path | None = None) -> Path:
    """Path of OpenCV's ``vtest.avi``; a gzip-compressed copy is unpacked into the cache."""
    plain = VTEST_DIR / "vtest.avi"
    if plain.is_file():
        return plain
    packed = VTEST_DIR / "vtest.avi.gz"
    if packed.is_file():
        target = resolve_cache_dir(cache_dir) / "vtest.avi"
        with _locked(target):
            if not target.is_file():
                tmp = _atomic_target(target)
                try:
                    with gzip.open(packed, "rb") as src, tmp.open("wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    os.replace(tmp, target)
                finally:
                    tmp.unlink(missing_ok=True)
        return target
    raise MediaError(
        f"{plain} not found: the demo video comes from Debian's opencv-doc package "
        "(apt-get install opencv-doc)"
    )
