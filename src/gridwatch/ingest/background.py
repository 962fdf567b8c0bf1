"""A long-term and a short-term background of one camera: what was left behind and stays.

The classic dual-background method (Porikli, Ivanov & Haga, 2008): two running averages of a
small grayscale picture learn the scene at two speeds.

* the **short-term** background follows the picture within seconds (``short_tau_s``): anything
  that stops moving becomes part of it;
* the **long-term** background is what the scene looks like without the things that came into
  it: it is updated only where the picture agrees with it (conservative update) and never
  under a person's box, so a bag put down, a parked car or a person standing still stays out
  of it.

A pixel that differs from the long-term background but not from the short-term one shows
something that *was not part of the scene and has stopped moving*: a **static candidate**.
Moving people differ from both; the scene itself differs from neither. Each static pixel
keeps an age (seconds it has been static; frozen while a person covers it, so a bag a person
stands over does not restart); connected static pixels form :class:`StaticBlob` s.

Both start from the per-pixel median of the first ``learn_s`` seconds, leaving out the
pixels under people's boxes (people walking through do not smear into it).

Nothing stays a candidate forever: pixels static for ``relearn_after_s`` are absorbed into the
long-term background (a parked car, a moved bench), and :meth:`DualBackground.absorb` absorbs
a region on demand (an alarm confirmed by an operator). A *ghost* (the hole left by something
the long-term background had learned and that went away) looks static too; its outline is in
the background, not in the picture, so it is absorbed at once: a car that drives off after
the background learned it. (Measured on the whole of vtest: learning with a plain mean left
such holes where people had stood and raised at 15 s; the median without people's boxes alone
keeps it quiet.)

Light: a change of light over the whole scene (a cloud, street lights switching on) changes
most pixels at once. Each picture is first scaled by the gain that brings its median to the
long-term background's (privacy masks, painted black, stay black); if even then more than
``global_change_share`` of the picture differs, the scene as a whole changed and both
backgrounds restart from it instead of reporting one huge object.

>>> bg = DualBackground(BackgroundSettings(width=40, learn_s=1, short_tau_s=1, min_area=0.005))
>>> scene = np.full((30, 40), 100, np.uint8)
>>> for t in range(3):  # learn the empty scene
...     _ = bg.update(scene, float(t))
>>> with_bag = scene.copy(); with_bag[20:26, 10:16] = 200
>>> steps = [bg.update(with_bag, 3 + t * 0.5) for t in range(12)]
>>> [round(b.still_s, 1) for b in steps[-1].blobs]
[5.5]
>>> steps[-1].blobs[0].foot
(0.325, 0.9)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

Gray = npt.NDArray[np.uint8]
Float = npt.NDArray[np.float32]
Mask = npt.NDArray[np.bool_]
Box = tuple[float, float, float, float]
"""Normalized xyxy."""


@dataclass(frozen=True)
class BackgroundSettings:
    """How the two backgrounds learn; see the module docstring."""

    width: int = 160
    """Working width in pixels (the picture is downscaled to it: noise averages out, and the
    per-frame cost stays a fraction of a millisecond)."""
    learn_s: float = 2.0
    """Seconds of picture averaged into both backgrounds at start."""
    short_tau_s: float = 2.0
    """Time constant of the short-term background: an object still for about twice this is
    part of it."""
    long_tau_s: float = 60.0
    """Time constant of the long-term background's (conservative) update: slow changes of
    light are followed, an object never."""
    threshold: float = 22.0
    """Gray-level difference a pixel needs to differ from a background."""
    min_area: float = 0.001
    """Smallest blob, as a share of the picture (0.001 of 768×576 is about 21×21 pixels)."""
    global_change_share: float = 0.35
    """When more than this share of the picture differs from the long-term background after
    the gain correction, the scene changed as a whole: both backgrounds restart."""
    relearn_after_s: float = 300.0
    """Pixels static this long are absorbed into the long-term background."""

    def __post_init__(self) -> None:
        if self.width < 16:
            raise ValueError(f"width must be at least 16, got {self.width}")
        for name in ("learn_s", "short_tau_s", "long_tau_s", "threshold", "relearn_after_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 < self.global_change_share <= 1:
            raise ValueError("global_change_share must be in (0, 1]")


@dataclass(frozen=True, slots=True)
class StaticBlob:
    """Connected static pixels: something that came into the scene and stopped."""

    box: Box
    """Normalized xyxy."""
    area: float
    """Share of the picture."""
    still_s: float
    """Median age of its pixels: how long it has been static."""
    since: float = 0.0
    """When it came into the scene (median over its pixels of when they began to differ
    from the long-term background): before it stopped, the short-term background needs a few
    seconds to take it in."""

    @property
    def foot(self) -> tuple[float, float]:
        """Bottom-centre, normalized: where it stands on the ground (as a person's anchor)."""
        x1, _, x2, y2 = self.box
        return round((x1 + x2) / 2, 4), round(y2, 4)


@dataclass(frozen=True, slots=True)
class BackgroundStep:
    """What one update found."""

    blobs: tuple[StaticBlob, ...] = ()
    learning: bool = False
    """The backgrounds are still being learned (nothing is reported)."""
    reset: bool = False
    """The scene changed as a whole (light, view): both backgrounds restarted."""
    absorbed: bool = False
    """Pixels static for ``relearn_after_s`` were absorbed into the long-term background."""
    changed_share: float = 0.0
    """Share of the picture that differs from the long-term background (after the gain)."""
    gain: float = 1.0


@dataclass
class _State:
    long: Float
    short: Float
    age: Float
    since: npt.NDArray[np.float64]
    """When each pixel began to differ from the long-term background (``inf``: it does not)."""
    last_ts: float
    shape: tuple[int, int]
    last: Float = field(repr=False)


class DualBackground:
    """The long- and short-term backgrounds of one camera; see the module docstring.

    Pure: :meth:`update` depends only on the pictures, timestamps and exclusions given, so a
    replay gives the same blobs.
    """

    def __init__(self, settings: BackgroundSettings | None = None) -> None:
        self.settings = settings or BackgroundSettings()
        self._learning: list[Float] = []
        self._learning_raw: list[Float] = []
        self._learn_start: float | None = None
        self._state: _State | None = None

    @property
    def learned(self) -> bool:
        return self._state is not None

    def _small(self, gray: Gray) -> Float:
        import cv2

        h, w = gray.shape[:2]
        width = min(self.settings.width, w)
        height = max(1, round(h * width / w))
        small = cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA)
        return np.asarray(cv2.GaussianBlur(small.astype(np.float32), (3, 3), 0), np.float32)

    def _exclusion(self, shape: tuple[int, int], boxes: Sequence[Box]) -> Mask:
        h, w = shape
        out = np.zeros(shape, dtype=bool)
        for x1, y1, x2, y2 in boxes:
            out[
                max(0, int(y1 * h)) : min(h, int(np.ceil(y2 * h)) + 1),
                max(0, int(x1 * w)) : min(w, int(np.ceil(x2 * w)) + 1),
            ] = True
        return out

    def update(self, gray: Gray, ts: float, exclude: Sequence[Box] = ()) -> BackgroundStep:
        """Learn from one picture at ``ts``; ``exclude`` are normalized boxes (people) that
        neither update the long-term background nor count as objects."""
        g = self._small(gray)
        s = self.settings
        st = self._state
        if st is None or st.shape != g.shape:
            return self._learn(g, ts, self._exclusion((g.shape[0], g.shape[1]), exclude))
        dt = max(0.0, ts - st.last_ts)
        st.last_ts = ts
        people = self._exclusion(st.shape, exclude)
        free = ~people
        ref = float(np.median(st.long[free])) if free.any() else float(np.median(st.long))
        cur = float(np.median(g[free])) if free.any() else float(np.median(g))
        gain = ref / cur if cur > 1.0 else 1.0
        gn = np.clip(g * gain, 0, 255).astype(np.float32)
        st.last = gn
        fg_long = np.abs(gn - st.long) > s.threshold
        changed = float(np.mean(fg_long[free])) if free.any() else float(np.mean(fg_long))
        if changed > s.global_change_share:
            log.info("background: %.0f%% of the scene changed at once; restarting", changed * 100)
            st.long[:] = gn
            st.short[:] = gn
            st.age[:] = 0
            st.since[:] = np.inf
            return BackgroundStep(reset=True, changed_share=changed, gain=gain)
        fg_short = np.abs(gn - st.short) > s.threshold
        st.since = np.where(fg_long, np.minimum(st.since, ts), np.inf)
        a_short = min(1.0, dt / s.short_tau_s)
        st.short += a_short * (gn - st.short)
        calm = ~fg_long & free
        a_long = min(1.0, dt / s.long_tau_s)
        st.long[calm] += a_long * (gn[calm] - st.long[calm])
        static = _clean(fg_long & ~fg_short)
        # ages: grow where static, frozen under people, reset elsewhere
        st.age = np.where(static & free, st.age + dt, np.where(people, st.age, 0.0)).astype(
            np.float32
        )
        absorbed = False
        old = st.age >= s.relearn_after_s
        if old.any():
            self._absorb_mask(old)
            absorbed = True
        blobs, ghosts = self._blobs(st, _clean(fg_long))
        if ghosts.any():
            self._absorb_mask(ghosts)
        return BackgroundStep(
            blobs=blobs, absorbed=absorbed, changed_share=round(changed, 4), gain=round(gain, 4)
        )

    def _learn(self, g: Float, ts: float, people: Mask) -> BackgroundStep:
        """The first background: per pixel, the median of the learning pictures in which no
        person covered it (people walking through do not smear into it; a pixel covered in
        every picture takes the plain median)."""
        if self._learning and self._learning[0].shape != g.shape:
            self._learning, self._learning_raw, self._learn_start = [], [], None
        if self._learn_start is None:
            self._learn_start = ts
        self._learning.append(np.where(people, np.nan, g).astype(np.float32))
        self._learning_raw.append(g)
        if ts - self._learn_start >= self.settings.learn_s and len(self._learning) >= 2:
            stack = np.stack(self._learning)
            seen = np.isfinite(stack).any(axis=0)
            with np.errstate(all="ignore"):
                free = np.nanmedian(np.where(seen, stack, 0.0), axis=0)
            plain = np.median(np.stack(self._learning_raw), axis=0)
            mean = np.where(seen, free, plain).astype(np.float32)
            self._learning_raw = []
            shape = (int(mean.shape[0]), int(mean.shape[1]))
            self._state = _State(
                long=mean.copy(),
                short=mean.copy(),
                age=np.zeros(shape, np.float32),
                since=np.full(shape, np.inf, np.float64),  # wall clock: float32 is too coarse
                last_ts=ts,
                shape=shape,
                last=mean.copy(),
            )
            self._learning, self._learn_start = [], None
        return BackgroundStep(learning=True)

    def _absorb_mask(self, mask: Mask) -> None:
        st = self._state
        assert st is not None
        grown = _dilate(mask, 2)
        st.long[grown] = st.last[grown]
        st.short[grown] = st.last[grown]
        st.age[grown] = 0
        st.since[grown] = np.inf

    def absorb(self, boxes: Sequence[Box] | None = None) -> None:
        """Make what is static now (within ``boxes``; ``None``: everywhere) part of the
        long-term background: a confirmed alarm's object, or a re-learned one."""
        st = self._state
        if st is None:
            return
        mask = st.age > 0
        if boxes is not None:
            mask &= self._exclusion(st.shape, boxes)
        if mask.any():
            self._absorb_mask(mask)

    def _blobs(self, st: _State, changed: Mask) -> tuple[tuple[StaticBlob, ...], Mask]:
        """The static blobs, and the pixels of ghosts among them.

        A *ghost* is the hole left by something the long-term background had learned and that
        went away (a person standing while it learned, a car that drove off): it differs from
        the long-term background and not from the short-term one, like an object left. Its
        outline tells them apart: an object left has its edges in the picture, a ghost has them
        in the long-term background only (the picture there is plain ground). The outline is
        that of the whole changed region around the blob (``changed``): a large plain object
        becomes static piece by piece, and a piece's own outline runs through its plain middle.
        """
        import cv2

        mask = st.age > 0
        if not mask.any():
            return (), np.zeros(st.shape, dtype=bool)
        h, w = mask.shape
        image: Any = mask.astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(image, connectivity=8)
        out: list[StaticBlob] = []
        ghosts = np.zeros(st.shape, dtype=bool)
        min_px = self.settings.min_area * h * w
        edges_now, edges_then = _edges(st.last), _edges(st.long)
        region: Any = (changed | mask).astype(np.uint8)
        _, regions = cv2.connectedComponents(region, connectivity=8)
        for i in range(1, n):
            x, y, bw, bh, area = (int(v) for v in stats[i])
            if area < min_px:
                continue
            mine = labels == i
            around = regions == np.bincount(regions[mine]).argmax()
            ring = _dilate(around, 1) & ~_erode(around, 1)
            if float(edges_now[ring].mean()) < float(edges_then[ring].mean()):
                ghosts |= mine
                continue
            still = float(np.median(st.age[mine]))
            began = st.since[mine]
            began = began[np.isfinite(began)]
            first = float(np.median(began)) if began.size else math.inf
            box = (
                round(x / w, 4),
                round(y / h, 4),
                round((x + bw) / w, 4),
                round((y + bh) / h, 4),
            )
            out.append(StaticBlob(box, area / (h * w), still, first))
        return tuple(sorted(out, key=lambda b: -b.area)), ghosts


def _clean(mask: Mask) -> Mask:
    """Opening (drops isolated noisy pixels) then closing (joins an object's parts)."""
    import cv2

    m: Any = mask.astype(np.uint8)
    k = np.ones((3, 3), np.uint8)
    m = cv2.morphologyEx(m, cv2.MORPH_OPEN, k)
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    return np.asarray(m, dtype=bool)


def _dilate(mask: Mask, px: int) -> Mask:
    import cv2

    k = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    return np.asarray(cv2.dilate(mask.astype(np.uint8), k), dtype=bool)


def _erode(mask: Mask, px: int) -> Mask:
    import cv2

    k = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    return np.asarray(cv2.erode(mask.astype(np.uint8), k), dtype=bool)


def _edges(img: Float) -> Float:
    """Gradient magnitude (Sobel)."""
    import cv2

    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3)
    return np.asarray(cv2.magnitude(gx, gy), dtype=np.float32)
