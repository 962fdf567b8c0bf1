"""Offline export of the ultralytics model to ONNX and OpenVINO IR, cached by the weights' hash.

The ``.pt`` weights are what the project ships (``model: default``); the fast CPU backends
(:mod:`~gridwatch.detectors.openvino_backend`, :mod:`~gridwatch.detectors.onnx_backend`) run an
export of them. Exports are made on first use, with no network, and kept in the cache
(``$GRIDWATCH_CACHE`` or ``~/.cache/gridwatch``) under ``exports/<sha256 of the weights>/``, so
a replaced weights file gets a fresh export and an unchanged one is never exported twice.

* The ONNX graph has **dynamic** batch, height and width: the same file serves whole frames
  letterboxed to 640×480, region mosaics of any size and batches of several cameras. (The
  fixed-square export ultralytics makes by default would pay 640×640 for every call.)
* The OpenVINO IR is converted from that ONNX with :func:`openvino.convert_model` (no
  TensorFlow, no ``nncf``), weights kept in FP32: the CPU plugin picks its own inference
  precision (bf16 where the CPU has AVX512-BF16 or AMX).
* Exports are written under a temporary name and renamed, under a file lock, so parallel
  workers or test processes never see (or make) a half-written model.

Failures raise :class:`ExportError` saying what failed and how to retry.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gridwatch.detectors.base import DetectorError
from gridwatch.detectors.weights import resolve_weights, weights_sha256

log = logging.getLogger(__name__)

ExportFormat = Literal["onnx", "openvino"]
ONNX_OPSET = 17
_EXPORT_VERSION = "v1"
"""Bump when the export parameters change, so stale cached exports are not reused."""


class ExportError(DetectorError):
    """The model could not be exported; the message says what failed and what to do."""


@dataclass(frozen=True, slots=True)
class ExportedModel:
    """A cached export. ``path`` is the ``.onnx`` file or the OpenVINO ``.xml``."""

    format: ExportFormat
    path: Path
    weights: Path
    weights_sha256: str
    class_names: dict[int, str]
    made: bool
    """True when this call exported it, False when it came from the cache."""


def cache_root(cache_dir: Path | None = None) -> Path:
    """``<cache>/exports``; the cache is ``cache_dir``, else ``$GRIDWATCH_CACHE``, else
    ``~/.cache/gridwatch``."""
    if cache_dir is None:
        env = os.environ.get("GRIDWATCH_CACHE")
        cache_dir = Path(env) if env else Path.home() / ".cache" / "gridwatch"
    root = cache_dir / "exports"
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _names_file(directory: Path) -> Path:
    return directory / "names.txt"


def _read_names(directory: Path) -> dict[int, str]:
    names: dict[int, str] = {}
    for line in _names_file(directory).read_text(encoding="utf-8").splitlines():
        idx, _, name = line.partition(" ")
        if idx.strip():
            names[int(idx)] = name
    return names


def _write_names(directory: Path, names: dict[int, str]) -> None:
    text = "".join(f"{i} {n}\n" for i, n in sorted(names.items()))
    tmp = directory / f".names.{os.getpid()}.tmp"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(_names_file(directory))


def _export_onnx(weights: Path, directory: Path, target: Path) -> dict[int, str]:
    """Run ultralytics' ONNX exporter on a copy of the weights in a scratch directory (it
    writes next to its input, and the input may be inside site-packages)."""
    os.environ.setdefault("YOLO_VERBOSE", "False")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    try:
        from ultralytics.models.yolo.model import YOLO
    except ImportError as e:  # pragma: no cover - hard dependency
        raise ExportError(f"exporting needs ultralytics: {e}") from e
    with tempfile.TemporaryDirectory(dir=directory, prefix=".export-") as scratch:
        src = Path(scratch) / f"model{weights.suffix or '.pt'}"
        shutil.copyfile(weights, src)
        model: Any = YOLO(str(src))
        names = {int(k): str(v) for k, v in (getattr(model, "names", None) or {}).items()}
        with warnings.catch_warnings():  # torch's notes about its legacy ONNX exporter
            warnings.simplefilter("ignore", DeprecationWarning)
            out = model.export(
                format="onnx",
                dynamic=True,
                simplify=False,
                opset=ONNX_OPSET,
                imgsz=640,
                device="cpu",
            )
        produced = Path(str(out))
        if not produced.is_file() or produced.stat().st_size < 100_000:
            raise ExportError(f"ultralytics reported {out!r} but wrote no usable ONNX file")
        os.replace(produced, target)
    return names


def _export_openvino(onnx_path: Path, target: Path) -> None:
    try:
        import openvino as ov
    except ImportError as e:
        raise ExportError(f"the openvino backend needs the openvino package: {e}") from e
    model = ov.convert_model(str(onnx_path))
    tmp = target.with_name(f".{target.stem}.{os.getpid()}.xml")
    ov.save_model(model, str(tmp), compress_to_fp16=False)
    # the .bin is written beside the .xml under the same stem: move it first
    os.replace(tmp.with_suffix(".bin"), target.with_suffix(".bin"))
    os.replace(tmp, target)


def onnx_class_names(path: Path) -> dict[int, str]:
    """Class names stored by ultralytics in an ONNX file's metadata (``names``), else {}."""
    import ast

    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    for prop in proto.metadata_props:
        if prop.key == "names":
            with contextlib.suppress(ValueError, SyntaxError):
                parsed = ast.literal_eval(prop.value)
                if isinstance(parsed, dict):
                    return {int(k): str(v) for k, v in parsed.items()}
    return {}


def _from_onnx_file(path: Path, fmt: ExportFormat, cache_dir: Path | None) -> ExportedModel:
    """A user's own ONNX file: used as is, or converted (and cached) for OpenVINO."""
    sha = weights_sha256(path)
    names = onnx_class_names(path)
    if fmt == "onnx":
        return ExportedModel(fmt, path, path, sha, names, made=False)
    directory = cache_root(cache_dir) / f"{path.stem}-{sha}-{_EXPORT_VERSION}"
    xml_path = directory / "model.xml"
    if xml_path.is_file():
        return ExportedModel(fmt, xml_path, path, sha, names, made=False)
    with _locked(directory):
        if not xml_path.is_file():
            try:
                _export_openvino(path, xml_path)
            except ExportError:
                raise
            except Exception as e:
                raise ExportError(
                    f"could not convert {path} to OpenVINO IR: {type(e).__name__}: {e}"
                ) from e
    return ExportedModel(fmt, xml_path, path, sha, names, made=True)


def export_model(
    model: str = "default", fmt: ExportFormat = "onnx", *, cache_dir: Path | None = None
) -> ExportedModel:
    """The ``fmt`` export of ``model`` (a ``model:`` config value), made once and cached.

    ``model`` may also name an ``.onnx`` file directly (``fmt="onnx"``), which is used as is.
    Raises :class:`ExportError` (a :class:`DetectorError`) when exporting fails.
    """
    resolved = resolve_weights(model)
    if resolved.path is None:
        raise ExportError(
            f"model {model!r} is not a local file; the onnx/openvino backends export local "
            "weights only (use model: default or a path)"
        )
    weights = resolved.path
    if weights.suffix.lower() == ".onnx":
        return _from_onnx_file(weights, fmt, cache_dir)
    sha = weights_sha256(weights)
    directory = cache_root(cache_dir) / f"{weights.stem}-{sha}-{_EXPORT_VERSION}"
    onnx_path = directory / "model.onnx"
    xml_path = directory / "model.xml"
    target = onnx_path if fmt == "onnx" else xml_path
    if target.is_file() and _names_file(directory).is_file():
        return ExportedModel(fmt, target, weights, sha, _read_names(directory), made=False)
    t0 = time.perf_counter()
    with _locked(directory):
        if target.is_file() and _names_file(directory).is_file():  # made while we waited
            return ExportedModel(fmt, target, weights, sha, _read_names(directory), made=False)
        try:
            if not onnx_path.is_file() or not _names_file(directory).is_file():
                log.info("exporting %s to ONNX (first use; cached in %s)", weights, directory)
                names = _export_onnx(weights, directory, onnx_path)
                _write_names(directory, names)
            if fmt == "openvino" and not xml_path.is_file():
                log.info("converting %s to OpenVINO IR", onnx_path)
                _export_openvino(onnx_path, xml_path)
        except ExportError:
            raise
        except Exception as e:
            raise ExportError(
                f"could not export {weights} to {fmt} in {directory}: {type(e).__name__}: {e}. "
                "Check that onnx/openvino are installed and the cache is writable, or use "
                "detector.backend: ultralytics"
            ) from e
    log.info("exported %s to %s in %.1f s", weights.name, target, time.perf_counter() - t0)
    return ExportedModel(fmt, target, weights, sha, _read_names(directory), made=True)
