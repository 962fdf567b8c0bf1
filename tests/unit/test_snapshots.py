"""Snapshot rendering draws what the rule saw, and the naming scheme stays in one place."""

from __future__ import annotations

import datetime as dt

import cv2
import numpy as np
import pytest

from gridwatch.alerts.snapshots import (
    BOX_COLOR,
    ZONE_COLOR,
    SnapshotStore,
    alert_label,
    render_snapshot,
    snapshot_name,
    snapshot_name_for,
)
from gridwatch.model import Alert, IncidentState

W, H = 640, 360
GRAY = 128
ZONE = ((0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75))
BOX = (0.05, 0.1, 0.15, 0.5)


def gray(w: int = W, h: int = H) -> np.ndarray:
    return np.full((h, w, 3), GRAY, np.uint8)


def decode(jpeg: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None, "not a decodable JPEG"
    return img


def px(img: np.ndarray, x: float, y: float) -> np.ndarray:
    """The pixel at normalized (x, y), as int BGR."""
    h, w = img.shape[:2]
    return np.asarray(img[round(y * (h - 1)), round(x * (w - 1))], dtype=int)


def near(color: np.ndarray, bgr: tuple[int, int, int], tol: int = 40) -> bool:
    return bool(np.all(np.abs(color - np.array(bgr)) <= tol))


@pytest.mark.parametrize(("w", "h"), [(W, H), (1920, 1080), (320, 240), (101, 77)])
def test_output_is_a_jpeg_of_the_frame_size(w: int, h: int) -> None:
    jpeg = render_snapshot(gray(w, h), zone_polygon_norm=ZONE, boxes_norm=[BOX], label="crowding 7")
    assert jpeg[:3] == b"\xff\xd8\xff"
    assert decode(jpeg).shape == (h, w, 3)


def test_zone_outline_and_boxes_are_drawn_and_the_rest_is_untouched() -> None:
    src = gray()
    out = decode(render_snapshot(src, zone_polygon_norm=ZONE, boxes_norm=[BOX], label=""))

    # On the zone's edges: the zone colour.
    for x, y in [(0.5, 0.25), (0.75, 0.5), (0.5, 0.75), (0.25, 0.5)]:
        assert near(px(out, x, y), ZONE_COLOR), (x, y, px(out, x, y))
    # On the box's edges: the box colour.
    for x, y in [(0.05, 0.3), (0.15, 0.3), (0.1, 0.1), (0.1, 0.5)]:
        assert near(px(out, x, y), BOX_COLOR), (x, y, px(out, x, y))
    # Inside the zone and far from everything: still gray (JPEG noise aside).
    for x, y in [(0.5, 0.5), (0.9, 0.9), (0.4, 0.6)]:
        assert near(px(out, x, y), (GRAY, GRAY, GRAY), tol=8), (x, y)
    assert np.all(src == GRAY), "the input frame must not be modified"


def test_label_band_is_drawn_top_left() -> None:
    out = decode(
        render_snapshot(gray(), zone_polygon_norm=None, boxes_norm=(), label="crowding 7\nline two")
    )
    band = out[:10, :40].astype(int)
    assert band.mean() < 60, "a dark band behind the label"
    text_rows = out[: H // 6, : W // 2]
    assert text_rows.max() > 200, "white label text"
    assert near(px(out, 0.9, 0.9), (GRAY, GRAY, GRAY), tol=8)


def test_privacy_masks_are_filled_before_drawing() -> None:
    mask = [(0.6, 0.6), (0.95, 0.6), (0.95, 0.95), (0.6, 0.95)]
    out = decode(
        render_snapshot(
            gray(), zone_polygon_norm=None, boxes_norm=(), label="", mask_polygons_norm=[mask]
        )
    )
    assert near(px(out, 0.8, 0.8), (0, 0, 0), tol=10)
    assert near(px(out, 0.3, 0.8), (GRAY, GRAY, GRAY), tol=8)


def test_out_of_range_coordinates_are_clipped_not_fatal() -> None:
    jpeg = render_snapshot(
        gray(),
        zone_polygon_norm=[(-1, -1), (2, -1), (2, 2)],
        boxes_norm=[(-0.5, 0.2, 1.5, 3.0)],
        label="x",
    )
    assert decode(jpeg).shape == (H, W, 3)


def test_quality_trades_size() -> None:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, size=(H, W, 3), dtype=np.uint8)
    small = render_snapshot(img, zone_polygon_norm=ZONE, boxes_norm=[BOX], label="x", quality=30)
    big = render_snapshot(img, zone_polygon_norm=ZONE, boxes_norm=[BOX], label="x", quality=95)
    assert len(small) < len(big)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((10, 10), np.uint8),
        np.zeros((10, 10, 4), np.uint8),
        np.zeros((10, 10, 3), np.float32),
    ],
)
def test_rejects_non_bgr_images(image: np.ndarray) -> None:
    with pytest.raises(ValueError, match="BGR"):
        render_snapshot(image, zone_polygon_norm=None, boxes_norm=(), label="")


def test_snapshot_name_scheme() -> None:
    assert snapshot_name("gate-9", "ab12", IncidentState.RAISED, 0) == "gate-9/ab12/raised-0.jpg"
    assert snapshot_name("gate-9", "ab12", "cleared", 3) == "gate-9/ab12/cleared-3.jpg"
    for bad in [
        ("gate 9", "a", "raised", 0),
        ("g", "a/b", "raised", 0),
        ("g", "a", "bogus", 0),
        ("g", "a", "raised", -1),
    ]:
        with pytest.raises(ValueError, match=r"camera id|alert id|IncidentState|sequence"):
            snapshot_name(*bad)


def test_snapshot_name_for_alert_and_label() -> None:
    t = dt.datetime(2026, 11, 26, 14, 3, 12, tzinfo=dt.UTC)
    alert = Alert(
        id="ab12",
        message_id="ab12.updated.2",
        type="crowding",
        state=IncidentState.UPDATED,
        sequence=2,
        camera_id="gate-9",
        camera_name="Gate 9",
        grid_id="kdl-01",
        zone_id="apron",
        started_at=t,
        observed_at=t,
        count=7,
        peak_count=9,
        boxes=[],
    )
    assert snapshot_name_for(alert) == "gate-9/ab12/updated-2.jpg"
    label = alert_label(alert)
    assert "crowding" in label
    assert "7" in label
    assert "peak 9" in label
    assert "2026-11-26 14:03:12Z" in label


async def test_store_refuses_what_is_not_a_jpeg() -> None:
    store = SnapshotStore(objects=None)  # type: ignore[arg-type]  # refused before any I/O
    with pytest.raises(ValueError, match="not a JPEG"):
        await store.put("cam/a/raised-0.jpg", b"\x89PNG\r\n")
    with pytest.raises(ValueError, match="bad snapshot name"):
        await store.put("/abs.jpg", b"\xff\xd8\xff\xe0")
