"""CrowdCounter on real footage: vtest.avi (PETS09 S2L1), the default model, ByteTrack at 2 fps.

The default fall model reports a yellow jacket lying on the lawn (bottom left) as ``Fall`` on
every frame. With ``static_after_s=20`` the counter must count it early (nothing is known about
it yet) and stop counting it from about 20 s, while counting the people no worse than the raw
boxes do against the PETS09 ground truth (MOT format, GT frame i+1 = video frame i).

Measured when this was written (openvino, imgsz 640, conf 0.25, every 5th frame, 159 frames):
MAE against GT raw 0.93 → counter 0.41; frame-to-frame spread (mean |Δcount|) raw 0.78,
counter 0.42, GT 0.18.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from gridwatch.model import Detections
from gridwatch.tracking.bytetrack import CameraTracker
from gridwatch.tracking.counting import CountSettings, CrowdCounter

cv2 = pytest.importorskip("cv2")

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
GT = Path("/work/shared/data/pets09-s2l1/gt.txt")
VIDEO_FPS = 10.0  # 795 frames, 79.5 s
STRIDE = 5  # every 5th frame: 2 analysed frames per second
JACKET_XYXY = (40.0, 470.0, 190.0, 570.0)  # region holding the jacket's boxes (~57,492,169,556)
STATIC_AFTER_S = 20.0


def _on_jacket(d: Detections) -> int:
    cx = (d.xyxy[:, 0] + d.xyxy[:, 2]) / 2
    cy = (d.xyxy[:, 1] + d.xyxy[:, 3]) / 2
    x0, y0, x1, y1 = JACKET_XYXY
    return int(((cx >= x0) & (cx <= x1) & (cy >= y0) & (cy <= y1)).sum())


@pytest.fixture(scope="module")
def detections() -> list[tuple[int, Detections]]:
    """(video frame index, person detections) for every analysed frame, detected once."""
    if not VTEST.is_file():
        pytest.fail(f"{VTEST} missing: apt-get install opencv-doc (./run setup does)")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YOLO_OFFLINE", "1")
        from gridwatch.detectors import build_detector

        detector = build_detector("default", 0.25, backend="openvino", imgsz=640)
        person = np.array(sorted(detector.person_class_ids))
        cap = cv2.VideoCapture(str(VTEST))
        out: list[tuple[int, Detections]] = []
        i = 0
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                if i % STRIDE == 0:
                    d = detector.detect(frame)
                    out.append((i, d.select(np.isin(d.class_id, person))))
                i += 1
        finally:
            cap.release()
    assert i >= 790, f"vtest.avi ended at frame {i}"
    return out


@pytest.fixture(scope="module")
def counted(
    detections: list[tuple[int, Detections]],
) -> list[tuple[float, Detections, Detections]]:
    """(ts, raw, counted) per analysed frame, through the tracker and the counter."""
    tracker = CameraTracker(frame_rate=VIDEO_FPS / STRIDE, keep_unmatched=True)
    counter = CrowdCounter(CountSettings(static_after_s=STATIC_AFTER_S))
    out = []
    for i, d in detections:
        ts = i / VIDEO_FPS
        out.append((ts, d, counter.update(tracker.update(d), ts)))
    return out


def test_the_jacket_is_counted_early_and_not_after_static_after_s(
    counted: list[tuple[float, Detections, Detections]],
) -> None:
    raw_on = [_on_jacket(raw) for _, raw, _ in counted]
    assert all(n >= 1 for n in raw_on), "the detector no longer sees the jacket: update the test"
    early = [_on_jacket(c) for ts, _, c in counted if ts < STATIC_AFTER_S]
    late = [(ts, _on_jacket(c)) for ts, _, c in counted if ts >= STATIC_AFTER_S]
    assert all(n >= 1 for n in early)
    assert [ts for ts, n in late if n] == []


def test_people_are_counted_no_worse_than_raw_and_steadier(
    counted: list[tuple[float, Detections, Detections]],
) -> None:
    per_frame = Counter(int(line.split(",", 1)[0]) for line in GT.read_text().splitlines())
    gt = np.array([per_frame.get(round(ts * VIDEO_FPS) + 1, 0) for ts, _, _ in counted])
    raw = np.array([len(r) for _, r, _ in counted])
    cnt = np.array([len(c) for _, _, c in counted])
    raw_people = raw - np.array([_on_jacket(r) for _, r, _ in counted])

    def mae(a: np.ndarray) -> float:
        return float(np.abs(a - gt).mean())

    def spread(a: np.ndarray) -> float:
        return float(np.abs(np.diff(a)).mean())

    report = (
        f"MAE vs GT: raw {mae(raw):.2f}, raw without the jacket {mae(raw_people):.2f}, "
        f"counter {mae(cnt):.2f}; spread: raw {spread(raw):.2f}, counter {spread(cnt):.2f}, "
        f"GT {spread(gt):.2f}"
    )
    print(report)
    assert mae(cnt) < mae(raw), report
    assert mae(cnt) <= mae(raw_people), report  # people are not hidden to win on the jacket
    # held only when ByteTrack confirmed the track (a nearest-box chain at 2 fps doubled walkers
    # in the live e2e test): measured 0.59 against raw 0.78 (GT 0.18); the rule's 1 s median
    # steadies the count further
    assert spread(cnt) < 0.8 * spread(raw), report
    # otherwise not reduced: beyond the jacket, the counter never counts fewer than raw
    for (ts, r, c), jacket in zip(counted, [_on_jacket(r) for _, r, _ in counted], strict=True):
        if ts >= STATIC_AFTER_S:
            assert len(c) >= len(r) - jacket, f"{ts:.1f} s: raw {len(r)}, counted {len(c)}"
