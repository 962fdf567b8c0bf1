"""Any COCO-style YOLO model by path: OpenVINO IR (FP32 or INT8), ONNX, static or dynamic.

Why this module exists: the default fall model is a YOLOv8s with two classes, slow on a CPU and
weak on small, distant people; a COCO YOLOv8n INT8 export finds more people in dense elevated
scenes at a fraction of the cost (``docs/models.md``). Users bring such models as files made
elsewhere, and those files come in shapes the exporter of :mod:`~gridwatch.detectors.export`
never makes:

* an OpenVINO IR **directory** (``yolov8n_int8_openvino_model/`` with ``.xml``, ``.bin`` and
  ultralytics' ``metadata.yaml``) or its ``.xml``;
* a **static** export (e.g. 1×3×320×320) whose box decoding has that size's anchors baked in:
  ``reshape`` of the whole graph fails. The graph is cut at the three head outputs (the 4-D
  ``Concat`` ops with ``4·16 + nc`` channels, one per stride) and the cut model is reshaped to a
  dynamic batch, height and width, so it runs at any multiple of 32 like the project's own
  exports. :func:`dfl_decode` then does in numpy what the cut-off graph did (DFL box decoding,
  sigmoid class scores) and returns the ``(batch, 4 + nc, anchors)`` centre-size layout that
  :func:`gridwatch.detectors.yolo_io.decode` takes, so NMS and the rest are shared.

Models whose input already has dynamic height and width (the project's own exports,
``dynamic=True`` exports) run as they are, with no cut and no export step.

Class names come from the model (ultralytics' ``metadata.yaml`` beside the IR, an ONNX file's
``names`` metadata, or the IR's ``model_info/labels``); the person class is chosen by name
(:func:`person_ids`), never by index.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from gridwatch.detectors.base import DetectorError

log = logging.getLogger(__name__)

REG_MAX = 16
"""Bins of ultralytics' distribution focal loss (DFL) box head: 4 × 16 box channels."""

ModelFormat = Literal["onnx", "openvino"]


@dataclass(frozen=True, slots=True)
class ModelSource:
    """The file a runtime reads and what is known about it before loading."""

    path: Path
    """The ``.xml`` or ``.onnx`` the runtime reads."""
    label: str
    """Short name for the detector's ``name`` (the IR directory's or the file's stem)."""
    sha256: str
    """Short sha256 of the weights (the IR's ``.bin``, the ``.onnx``, or the source ``.pt``)."""
    class_names: dict[int, str]
    made: bool
    """True when an export was made now (first use of a ``.pt``)."""


def ir_xml_path(model: str) -> Path | None:
    """The ``.xml`` of an OpenVINO IR named by ``model`` (a directory or the ``.xml``), else None.

    A directory must hold exactly one ``.xml``; an ``.xml`` must have its ``.bin`` beside it,
    so a half-copied model fails here with the path in the message, not deep in OpenVINO.
    """
    spec = model.strip()
    if not spec or spec == "default":
        return None
    p = Path(spec).expanduser()
    if p.is_dir():
        xmls = sorted(p.glob("*.xml"))
        if len(xmls) != 1:
            raise DetectorError(
                f"model directory {spec!r} must hold exactly one OpenVINO .xml "
                f"(found {len(xmls)}); point model: at the .xml itself"
            )
        xml = xmls[0]
    elif p.suffix.lower() == ".xml":
        if not p.is_file():
            raise DetectorError(f"OpenVINO model {spec!r} does not exist ({p.resolve()})")
        xml = p
    else:
        return None
    if not xml.with_suffix(".bin").is_file():
        raise DetectorError(f"OpenVINO model {xml} has no {xml.with_suffix('.bin').name} beside it")
    return xml.resolve()


def metadata_class_names(model_file: Path) -> dict[int, str]:
    """``names:`` from the ``metadata.yaml`` ultralytics writes beside an export, else {}."""
    meta = model_file.parent / "metadata.yaml"
    if not meta.is_file():
        return {}
    import yaml

    try:
        data = yaml.safe_load(meta.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        log.warning("could not read %s: %s", meta, e)
        return {}
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict):
        return {int(k): str(v) for k, v in names.items()}
    if isinstance(names, list):
        return {i: str(v) for i, v in enumerate(names)}
    return {}


def _ir_rt_info_names(model: Any) -> dict[int, str]:
    """``model_info/labels`` that ultralytics' OpenVINO exporter stores in the IR, else {}.

    It replaces spaces by ``_`` there (``traffic_light``); ``person`` is unaffected.
    """
    with contextlib.suppress(Exception):
        if model.has_rt_info(["model_info", "labels"]):
            raw = model.get_rt_info(["model_info", "labels"])
            text = str(getattr(raw, "astype", lambda t: raw)(str))
            labels = text.split()
            return {i: n for i, n in enumerate(labels)}
    return {}


def _warn_unnamed(names: Mapping[int, str], path: Path) -> None:
    if not names:
        log.warning(
            "model %s carries no class names (no metadata.yaml beside it, none in the file): "
            "no class counts as a person; copy the export's metadata.yaml next to it",
            path,
        )


def model_source(model: str, fmt: ModelFormat, *, cache_dir: Path | None = None) -> ModelSource:
    """Where the ``fmt`` backend's model for ``model`` (a ``model:`` config value) comes from.

    An IR directory or ``.xml`` is used as it is (``openvino`` only); anything else goes
    through :func:`~gridwatch.detectors.export.export_model` (``default``, a ``.pt``, an
    ``.onnx``), as before. Class names missing from an export are looked up in a
    ``metadata.yaml`` beside the user's file.
    """
    from gridwatch.detectors.export import export_model
    from gridwatch.detectors.weights import weights_sha256

    xml = ir_xml_path(model)
    if xml is not None:
        if fmt != "openvino":
            raise DetectorError(
                f"model {model!r} is an OpenVINO IR; run it with backend: openvino, or give "
                "the onnx backend an .onnx file"
            )
        given_dir = Path(model.strip()).expanduser().is_dir()
        label = xml.parent.name if given_dir else xml.stem
        names = metadata_class_names(xml)
        if not names:  # the labels ultralytics also stores in the IR (reading it is cheap)
            import openvino as ov

            with contextlib.suppress(Exception):
                names = _ir_rt_info_names(ov.Core().read_model(str(xml)))
        _warn_unnamed(names, xml)
        return ModelSource(xml, label, weights_sha256(xml.with_suffix(".bin")), names, made=False)
    exported = export_model(model, fmt, cache_dir=cache_dir)
    names = dict(exported.class_names)
    if not names:
        names = metadata_class_names(exported.weights)
    _warn_unnamed(names, exported.weights)
    return ModelSource(
        exported.path, exported.weights.stem, exported.weights_sha256, names, exported.made
    )


def person_ids(
    class_names: Mapping[int, str], person_classes: Sequence[str] | None = None
) -> frozenset[int]:
    """The class ids that count as a person: those named in ``person_classes`` (any case), else
    :func:`~gridwatch.detectors.ultralytics_backend.person_ids_for` (``person``; both classes of
    the fall model).

    >>> sorted(person_ids({0: "person", 1: "bicycle"}))
    [0]
    >>> sorted(person_ids({0: "pedestrian", 1: "rider", 2: "car"}, ["Pedestrian", "rider"]))
    [0, 1]
    """
    from gridwatch.detectors.ultralytics_backend import person_ids_for

    if person_classes is None:
        ids = person_ids_for(class_names)
        if class_names and not ids:
            log.warning(
                "no class of this model is named 'person' (it has %s...): people-counting rules "
                "see nobody; set detector.person_classes",
                ", ".join(list(class_names.values())[:5]),
            )
        return ids
    wanted = {n.strip().lower() for n in person_classes}
    found = frozenset(i for i, n in class_names.items() if n.strip().lower() in wanted)
    missing = wanted - {class_names[i].strip().lower() for i in found}
    if missing:
        known = ", ".join(class_names[i] for i in sorted(class_names)[:20])
        raise DetectorError(
            f"person_classes {sorted(missing)} are not classes of this model (it has: {known}"
            f"{', ...' if len(class_names) > 20 else ''})"
        )
    return found


# --------------------------------------------------------------------------- head detection


def _num_classes(channels: int, class_names: Mapping[int, str]) -> int | None:
    nc = channels - 4 * REG_MAX
    if nc < 1 or (class_names and nc != len(class_names)):
        return None
    return nc


@dataclass(frozen=True, slots=True)
class PreparedModel:
    """A model ready to compile, and whether its outputs need :func:`dfl_decode`."""

    model: Any
    """``openvino.Model``, or the serialized ONNX bytes / path for ONNX Runtime."""
    cut: bool
    """True: outputs are the raw head maps (decode with :func:`dfl_decode`); False: the model
    outputs ``(batch, 4 + nc, anchors)`` itself."""
    num_classes: int | None


def _ov_dims(pshape: Any) -> list[int | None]:
    return [d.get_length() if d.is_static else None for d in pshape]


def _ov_head_outputs(model: Any, class_names: Mapping[int, str]) -> list[Any]:
    """The 4-D ``Concat`` outputs with ``64 + nc`` channels that feed a ``Reshape`` into the
    3-D anchors ``Concat`` (ultralytics' Detect head), largest map (stride 8) first."""
    by_channels: dict[int, list[tuple[int, Any]]] = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Concat":
            continue
        pshape = op.get_output_partial_shape(0)
        dims = _ov_dims(pshape) if pshape.rank.is_static else []
        if len(dims) != 4 or dims[1] is None or _num_classes(dims[1], class_names) is None:
            continue
        feeds_anchor_concat = any(
            t.get_node().get_type_name() == "Reshape"
            and any(
                u.get_node().get_type_name() == "Concat"
                for u in t.get_node().output(0).get_target_inputs()
            )
            for t in op.output(0).get_target_inputs()
        )
        if feeds_anchor_concat:
            area = (dims[2] or 0) * (dims[3] or 0)
            by_channels.setdefault(dims[1], []).append((area, op.output(0)))
    if len(by_channels) != 1:
        return []
    heads = next(iter(by_channels.values()))
    return [out for _, out in sorted(heads, key=lambda a: -a[0])]


def prepare_openvino_model(model: Any, class_names: Mapping[int, str]) -> PreparedModel:
    """Make an ``openvino.Model`` run at any input size (see the module docs).

    Dynamic height and width: used as is. Static: cut at the Detect head and reshaped to
    ``[-1, 3, -1, -1]``. Raises :class:`DetectorError` for a static model without a YOLOv8-style
    head, saying how to export one that works.
    """
    import openvino as ov

    if len(model.inputs) != 1:
        raise DetectorError(f"expected a model with one image input, got {len(model.inputs)}")
    in_shape = model.inputs[0].get_partial_shape()
    dims = _ov_dims(in_shape) if in_shape.rank.is_static else [None] * 4
    if len(dims) == 4 and dims[2] is None and dims[3] is None:
        out = model.outputs[0].get_partial_shape()
        out_dims = _ov_dims(out) if out.rank.is_static else []
        nc = None if len(out_dims) != 3 or out_dims[1] is None else out_dims[1] - 4
        return PreparedModel(model, cut=False, num_classes=nc)
    heads = _ov_head_outputs(model, class_names)
    if not heads:
        raise DetectorError(
            f"the model's input is static {dims} and no YOLOv8/YOLO11 Detect head (4-D Concat "
            f"of 64 + {len(class_names) or 'nc'} channels) was found to cut it at; export it "
            "with dynamic=True (yolo export ... dynamic=True), see docs/models.md"
        )
    cut = ov.Model(heads, model.get_parameters(), "gridwatch_cut_head")
    cut.reshape({cut.inputs[0]: ov.PartialShape([-1, 3, -1, -1])})
    nc = heads[0].get_partial_shape()[1].get_length() - 4 * REG_MAX
    log.info(
        "static model input %s: cut at %d head outputs (%d classes), reshaped to any size",
        dims,
        len(heads),
        nc,
    )
    return PreparedModel(cut, cut=True, num_classes=nc)


def _onnx_dims(value_info: Any) -> list[int | None]:
    return [
        d.dim_value if d.HasField("dim_value") else None
        for d in value_info.type.tensor_type.shape.dim
    ]


def prepare_onnx_model(path: Path, class_names: Mapping[int, str]) -> PreparedModel:
    """The ONNX counterpart of :func:`prepare_openvino_model`: a static model is cut at its
    Detect head (``onnx.utils.Extractor``), its input and outputs made symbolic, and returned
    serialized for ONNX Runtime; a dynamic one is returned as its path."""
    import onnx
    import onnx.utils

    proto = onnx.load(str(path))
    graph = proto.graph
    inits = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise DetectorError(f"expected an ONNX model with one image input, got {len(inputs)}")
    dims = _onnx_dims(inputs[0])
    if len(dims) == 4 and dims[2] is None and dims[3] is None:
        out_dims = _onnx_dims(graph.output[0])
        nc = None if len(out_dims) != 3 or out_dims[1] is None else out_dims[1] - 4
        return PreparedModel(str(path), cut=False, num_classes=nc)
    inferred = onnx.shape_inference.infer_shapes(proto)
    shapes = {v.name: _onnx_dims(v) for v in inferred.graph.value_info}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    by_channels: dict[int, list[tuple[int, str]]] = {}
    for node in graph.node:
        if node.op_type != "Concat":
            continue
        d = shapes.get(node.output[0], [])
        if len(d) != 4 or d[1] is None or _num_classes(d[1], class_names) is None:
            continue
        if any(
            c.op_type == "Reshape"
            and any(u.op_type == "Concat" for u in consumers.get(c.output[0], []))
            for c in consumers.get(node.output[0], [])
        ):
            by_channels.setdefault(d[1], []).append(((d[2] or 0) * (d[3] or 0), node.output[0]))
    if len(by_channels) != 1:
        raise DetectorError(
            f"the ONNX model's input is static {dims} and no YOLOv8/YOLO11 Detect head was "
            "found to cut it at; export it with dynamic=True, see docs/models.md"
        )
    channels, heads = next(iter(by_channels.items()))
    names = [n for _, n in sorted(heads, key=lambda a: -a[0])]
    cut = onnx.utils.Extractor(inferred).extract_model([inputs[0].name], names)
    for value, labels in [(cut.graph.input[0], ("batch", None, "height", "width"))] + [
        (o, ("batch", None, f"h{i}", f"w{i}")) for i, o in enumerate(cut.graph.output)
    ]:
        for dim, label in zip(value.type.tensor_type.shape.dim, labels, strict=False):
            if label is not None:
                dim.ClearField("dim_value")
                dim.dim_param = label
    del cut.graph.value_info[:]  # inferred for the static size; ONNX Runtime re-infers
    log.info("static ONNX input %s: cut at %d head outputs, dynamic size", dims, len(names))
    return PreparedModel(cut.SerializeToString(), cut=True, num_classes=channels - 4 * REG_MAX)


# --------------------------------------------------------------------------- decoding


@functools.lru_cache(maxsize=64)
def _grid(h: int, w: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Cell-centre x and y (in cells) of an h×w map, row-major like ultralytics' anchors."""
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = gx.ravel() + 0.5, gy.ravel() + 0.5
    cx.setflags(write=False)
    cy.setflags(write=False)
    return cx, cy


def _sigmoid(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float32)


def dfl_decode(
    outputs: Sequence[npt.NDArray[np.float32]],
    input_hw: tuple[int, int],
    *,
    reg_max: int = REG_MAX,
    min_score: float | None = None,
) -> npt.NDArray[np.float32]:
    """Raw Detect-head maps → ``(batch, 4 + nc, anchors)``: centre x, centre y, width, height in
    input pixels, then per-class scores — the layout :func:`~gridwatch.detectors.yolo_io.decode`
    takes.

    Each map is ``(batch, 4·reg_max + nc, h, w)`` with stride ``input_h / h``; anchors are the
    cell centres, maps in the order given (largest first, as ultralytics concatenates them).
    Class score = sigmoid of channels ``4·reg_max..``; each box side's distance = the expected
    value of the softmax over its ``reg_max`` bins (weights 0..reg_max-1); box = (cx − l,
    cy − t, cx + r, cy + b) × stride.

    ``min_score`` skips work for anchors whose best score is below it (most of them): their
    scores and boxes come back as 0, which ``decode`` drops at any confidence ≥ ``min_score``.

    >>> m = np.zeros((1, 4 * 16 + 2, 1, 1), np.float32)
    >>> m[0, [3, 16 + 3, 32 + 5, 48 + 5], 0, 0] = 50.0   # l=3, t=3, r=5, b=5 cells
    >>> m[0, 64, 0, 0] = 10.0                               # class 0 score ≈ 1
    >>> out = dfl_decode([m], (32, 32))
    >>> out.shape, [round(float(v), 2) for v in out[0, :4, 0]]
    ((1, 6, 1), [48.0, 48.0, 256.0, 256.0])
    """
    in_h, in_w = input_hw
    box_ch = 4 * reg_max
    parts: list[npt.NDArray[np.float32]] = []
    bins = np.arange(reg_max, dtype=np.float32)
    score_logit = None
    if min_score is not None and 0.0 < min_score < 1.0:
        score_logit = float(np.log(min_score / (1.0 - min_score)))
    for raw in outputs:
        n, c, h, w = raw.shape
        if c <= box_ch:
            raise ValueError(f"head map has {c} channels, needs more than {box_ch}")
        if in_h % h or in_w % w or in_h // h != in_w // w:
            raise ValueError(f"head map {h}×{w} does not divide the input {in_h}×{in_w}")
        stride = float(in_h // h)
        a = h * w
        flat = np.asarray(raw, dtype=np.float32).reshape(n, c, a)
        logits = flat[:, box_ch:]
        out = np.zeros((n, 4 + c - box_ch, a), dtype=np.float32)
        cx, cy = _grid(h, w)
        for b in range(n):
            if score_logit is None:
                keep: slice | npt.NDArray[np.intp] = slice(None)
            else:
                keep = np.flatnonzero(logits[b].max(axis=0) >= score_logit)
                if keep.size == 0:
                    continue
            dist = flat[b, :box_ch][:, keep].reshape(4, reg_max, -1)
            dist = np.exp(dist - dist.max(axis=1, keepdims=True))
            ltrb = np.einsum("kbn,b->kn", dist, bins) / dist.sum(axis=1)  # (4, anchors)
            x1, y1 = cx[keep] - ltrb[0], cy[keep] - ltrb[1]
            x2, y2 = cx[keep] + ltrb[2], cy[keep] + ltrb[3]
            ob = out[b]  # a view: one advanced index per assignment keeps (channels, anchors)
            ob[0, keep] = (x1 + x2) * (0.5 * stride)
            ob[1, keep] = (y1 + y2) * (0.5 * stride)
            ob[2, keep] = (x2 - x1) * stride
            ob[3, keep] = (y2 - y1) * stride
            ob[4:, keep] = _sigmoid(logits[b][:, keep])
        parts.append(out)
    return np.concatenate(parts, axis=2)
