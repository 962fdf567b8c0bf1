"""Privacy masks are painted black on the frame itself, in the same pixels snapshots use."""

from __future__ import annotations

import cv2
import numpy as np

from gridwatch.alerts.snapshots import render_snapshot
from gridwatch.ingest.masks import PrivacyMasker
from gridwatch.model import Frame

MASK = [(0.5, 0.0), (1.0, 0.0), (1.0, 0.5), (0.5, 0.5)]


def bright(w: int = 200, h: int = 100) -> np.ndarray:
    return np.full((h, w, 3), 200, dtype=np.uint8)


def test_masked_pixels_are_black_and_the_rest_untouched() -> None:
    img = bright()
    out = PrivacyMasker([MASK]).apply_image(img)
    assert out is img  # in place: no copy per frame
    assert (img[:49, 101:] == 0).all()
    assert (img[51:, :] == 200).all()
    assert (img[:, :99] == 200).all()


def test_frame_and_sizes() -> None:
    masker = PrivacyMasker([MASK, [(0, 0), (0.1, 0)]])  # a 2-point "polygon" is ignored
    assert len(masker.polygons) == 1
    for w, h in ((200, 100), (64, 64)):
        frame = Frame("c", bright(w, h), 0.0, 0.0, 0)
        assert masker.apply(frame) is frame
        assert frame.image[0, w - 1].tolist() == [0, 0, 0]
        assert frame.image[h - 1, 0].tolist() == [200, 200, 200]


def test_no_masks_is_a_no_op() -> None:
    img = bright()
    masker = PrivacyMasker([])
    assert not masker
    masker.apply_image(img)
    assert (img == 200).all()


def test_snapshot_masks_cover_the_same_pixels() -> None:
    """The pipeline's mask and render_snapshot's fill agree, so a snapshot of an already masked
    frame and a snapshot that masks it itself show the same black area."""
    masked = PrivacyMasker([MASK]).apply_image(bright())
    jpeg = render_snapshot(
        bright(), zone_polygon_norm=None, boxes_norm=(), label="", mask_polygons_norm=[MASK]
    )
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert np.abs(decoded.astype(int) - masked.astype(int)).max() < 40  # JPEG noise only
