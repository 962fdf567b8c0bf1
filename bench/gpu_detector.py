"""The default detector's speed on a GPU machine that has torch but not gridwatch.

Two steps, because the GPU machine cannot install packages:

    # here (CPU, the project's venv): export the default weights to TorchScript + 4 real frames
    .venv/bin/python bench/gpu_detector.py export .gpu
    # there (any python3 with torch + torchvision + CUDA), with the folder copied over:
    python3 bench/gpu_detector.py run .gpu

``run`` letterboxes on the GPU, runs the model and NMS (torchvision), and prints ms per batch
and frames per second for fp32/fp16 at batch 1, 8, 32 and 64.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any


def export(folder: Path) -> None:
    import cv2
    import numpy as np
    from ultralytics import YOLO

    from gridwatch.detectors.weights import default_weights_path
    from gridwatch.media_cache import vtest_path

    folder.mkdir(parents=True, exist_ok=True)
    work = folder / "export"
    work.mkdir(exist_ok=True)
    weights = work / "best.pt"
    shutil.copy(default_weights_path(), weights)  # export writes next to the weights
    out = YOLO(str(weights)).export(format="torchscript", imgsz=640, dynamic=True)
    shutil.move(out, folder / "yolov8s_fall.torchscript")
    shutil.rmtree(work)
    cap = cv2.VideoCapture(str(vtest_path()))
    frames = []
    for i in range(601):
        ok, frame = cap.read()
        if not ok:
            break
        if i in (60, 200, 400, 600):
            frames.append(frame)
    np.save(folder / "frames.npy", np.stack(frames))
    print(f"wrote {folder}/yolov8s_fall.torchscript and frames.npy")


def run(folder: Path) -> None:
    import numpy as np
    import torch
    import torchvision

    dev = "cuda"
    model = torch.jit.load(str(folder / "yolov8s_fall.torchscript"), map_location=dev).eval()
    frames = np.load(folder / "frames.npy")  # 4 x 576 x 768 x 3, BGR

    def prep(batch: Any, half: bool) -> Any:
        # letterbox 768x576 -> 640x480, padded to 640x640 as ultralytics does for square input
        x = torch.from_numpy(batch).to(dev).permute(0, 3, 1, 2).flip(1).float() / 255
        x = torch.nn.functional.interpolate(x, size=(480, 640), mode="bilinear")
        x = torch.nn.functional.pad(x, (0, 0, 80, 80), value=114 / 255)
        return x.half() if half else x

    def post(out: Any, conf: float = 0.25) -> list[Any]:
        res = []
        for p in out.transpose(1, 2):  # (N, 8400, 4 + classes)
            scores, _ = p[:, 4:].max(1)
            keep = scores > conf
            b, s = p[keep, :4], scores[keep]
            xyxy = torch.cat([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], 1)
            res.append(xyxy[torchvision.ops.nms(xyxy.float(), s.float(), 0.5)])
        return res

    rows = []
    for half in (False, True):
        m = model.half() if half else model.float()
        for bs in (1, 8, 32, 64):
            batch = np.concatenate([frames] * (bs // len(frames) + 1))[:bs]
            with torch.inference_mode():
                for _ in range(5):
                    post(m(prep(batch, half)))
                torch.cuda.synchronize()
                n = 30 if bs <= 8 else 10
                t = time.perf_counter()
                for _ in range(n):
                    dets = post(m(prep(batch, half)))
                torch.cuda.synchronize()
                dt = (time.perf_counter() - t) / n
            rows.append(
                {
                    "dtype": "fp16" if half else "fp32",
                    "batch": bs,
                    "ms_per_batch": round(dt * 1000, 2),
                    "frames_per_s": round(bs / dt, 1),
                    "boxes_frame0": len(dets[0]),
                }
            )
    print(torch.cuda.get_device_name(0), "torch", torch.__version__)
    print(f"{'dtype':6} {'batch':>5} {'ms/batch':>9} {'frames/s':>9} {'boxes f0':>9}")
    for r in rows:
        print(
            f"{r['dtype']:6} {r['batch']:>5} {r['ms_per_batch']:>9} "
            f"{r['frames_per_s']:>9} {r['boxes_frame0']:>9}"
        )
    out = Path(os.environ.get("OUT", folder))
    (out / "gpu_detector.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("export", "run"):
        print(__doc__)
        raise SystemExit(2)
    (export if sys.argv[1] == "export" else run)(Path(sys.argv[2]))
