"""Tamper: the view is covered or blacked out, out of focus, moved, or frozen.

A frame rule (:class:`~gridwatch.rules.base.FrameRule`): it looks at a small grayscale copy of
each analysed frame, never at detections, and compares it with what the camera normally sees.

The reference is *learned* from the camera's own picture: the first ``learn_s`` seconds give a
background image (a running average, so passing people blur out), the usual contrast and the
usual sharpness; afterwards the reference follows slow change (daylight) with a time constant
of ``adapt_s``, but only while nothing is wrong, so a covered lens never becomes the new normal.

Checks, in priority order (a black frame is also blurred and frozen: only the first that holds
is reported):

``covered``
    contrast (the standard deviation of gray levels) below ``covered_contrast`` × the
    reference's, or at least ``covered_flat`` of the frame's cells featureless where the
    reference had few: a hand, a bag, spray paint, a lens cap, a dead sensor all flatten the
    picture, all or most of it.
``frozen``
    consecutive analysed frames identical while frames keep arriving: fewer than
    ``frozen_changed`` of the pixels changed by more than ``frozen_level`` gray levels (default:
    by anything at all). Measured on vtest re-encoded as a camera would send it: a static patch
    of grass with nobody in it still changes 25–85% of its pixels between frames 0.5 s apart
    (sensor and coding noise); a frozen picture changes 0–0.34% (re-quantisation at key
    frames, which ``onset_gap_s`` rides over).
``defocused``
    focus (gradient energy per unit of contrast², so dimming the light does not look like
    blur) below ``defocus_ratio`` × the reference's. Measured: real vtest 0.9–1.2, a Gaussian
    blur of σ 3 px (768 px frame) 0.47, σ 2 px 0.66.
``moved``
    registration against the reference background: phase correlation finds the shift; the view
    moved when the shift exceeds ``moved_shift`` (a fraction of the width) or when even the
    best-aligned picture no longer correlates with the reference (``moved_correlation``).
    Measured: real vtest shifts ≤ 0.002 and correlates 0.55–0.97 with its background (people
    walking through it); a view rotated 8° correlates 0.23–0.36.

Each kind is its own incident (``rule_key`` ``tamper/<kind>``), raised after the condition held
``min_duration_s`` and cleared ``clear_after_s`` after it stopped. A view that stays moved for
``rebaseline_after_s`` becomes the new reference (the camera was re-aimed on purpose), which
clears the incident with reason ``rebaselined``.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field

from gridwatch.model import IncidentEvent
from gridwatch.rules.base import (
    Always,
    Episode,
    EpisodeParams,
    FrameSample,
    RuleContext,
    ScheduleLike,
)
from gridwatch.rules.settings import RuleSettings, clear_after_field

log = logging.getLogger(__name__)

TamperKind = Literal["covered", "frozen", "defocused", "moved"]
KINDS: tuple[TamperKind, ...] = ("covered", "frozen", "defocused", "moved")
Gray = npt.NDArray[np.uint8]


class TamperRuleConfig(RuleSettings):
    type: Literal["tamper"] = Field(title="Type", description="Rule type.")
    checks: list[TamperKind] = Field(
        default_factory=lambda: list(KINDS),
        min_length=1,
        title="Checks",
        description="Which tamper kinds to detect: covered, frozen, defocused, moved.",
    )
    min_duration_s: float = Field(
        default=10.0,
        ge=0,
        title="Minimum duration",
        description="Seconds a tamper condition must last before an alert.",
    )
    clear_after_s: float = clear_after_field(5.0, "with the view back to normal")
    learn_s: float = Field(
        default=5.0,
        gt=0,
        title="Learn",
        description="Seconds of normal picture the reference is learned from at start.",
    )
    covered_contrast: float = Field(
        default=0.35,
        gt=0,
        lt=1,
        title="Covered contrast",
        description="Covered when contrast falls below this share of the reference's.",
    )
    covered_flat: float = Field(
        default=0.7,
        gt=0,
        le=1,
        title="Covered flat share",
        description="Covered when at least this share of the view is featureless (a cover "
        "over most of the lens).",
    )
    defocus_ratio: float = Field(
        default=0.6,
        gt=0,
        lt=1,
        title="Defocus ratio",
        description="Defocused when focus (sharpness per contrast) falls below this share of "
        "the reference's.",
    )
    moved_shift: float = Field(
        default=0.02,
        gt=0,
        lt=1,
        title="Moved shift",
        description="Moved when the view shifted by more than this share of its width.",
    )
    moved_correlation: float = Field(
        default=0.4,
        gt=-1,
        lt=1,
        title="Moved correlation",
        description="Moved when the aligned view correlates less than this with the reference.",
    )
    frozen_level: int = Field(
        default=0,
        ge=0,
        le=255,
        title="Frozen level",
        description="Gray-level change a pixel needs beyond this to count as changed.",
    )
    frozen_changed: float = Field(
        default=0.02,
        ge=0,
        lt=1,
        title="Frozen changed share",
        description="Frozen when fewer than this share of pixels changed between frames.",
    )
    rebaseline_after_s: float = Field(
        default=600.0,
        gt=0,
        title="Re-baseline after",
        description="A view moved for this long becomes the new reference (clears the alert).",
    )


@dataclass(frozen=True, slots=True)
class ViewStats:
    """What one frame looks like, in the numbers the checks compare."""

    contrast: float
    sharpness: float
    flat_share: float = 0.0
    """Share of the frame's 8×6 cells that are featureless (gray-level std below 6)."""

    @property
    def focus(self) -> float:
        """Sharpness per unit of contrast: blur lowers it, a change of light does not (gradient
        energy scales with contrast squared; halving the light quarters it)."""
        return self.sharpness / max(self.contrast * self.contrast, 1.0)


def view_stats(gray: Gray) -> ViewStats:
    """Contrast and sharpness of a grayscale frame.

    Sharpness is the mean squared Sobel gradient after a 3×3 median filter: the filter removes
    sensor and compression noise (which would make a blurred noisy picture look sharp), and the
    mean over the whole frame is dominated by the fixed scene, not by a few people.

    The flat share catches a cover over most but not all of the view (the top strip still
    shows the scene, so the overall contrast stays at half the reference's): measured on vtest,
    real frames have no flat cell, 90% sprayed over 0.83, the light dimmed to 55% 0.23.

    >>> flat = np.full((60, 80), 128, np.uint8)
    >>> view_stats(flat)
    ViewStats(contrast=0.0, sharpness=0.0, flat_share=1.0)
    """
    import cv2

    g = cv2.medianBlur(gray, 3)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    h, w = gray.shape
    ch, cw = h // 6, w // 8
    cells = gray[: ch * 6, : cw * 8].reshape(6, ch, 8, cw).swapaxes(1, 2).reshape(48, -1)
    return ViewStats(
        contrast=float(np.std(gray)),
        sharpness=float(np.mean(gx * gx + gy * gy)),
        flat_share=float(np.mean(cells.std(axis=1) < 6.0)),
    )


def changed_fraction(a: Gray, b: Gray, level: int) -> float:
    """Share of pixels whose gray level differs by more than ``level``.

    >>> a = np.zeros((10, 10), np.uint8); b = a.copy(); b[0, 0] = 50
    >>> changed_fraction(a, b, 6)
    0.01
    """
    import cv2

    diff = cv2.absdiff(a, b)
    return float(np.count_nonzero(diff > level)) / diff.size


def registration(reference: npt.NDArray[np.float32], gray: Gray) -> tuple[float, float, float]:
    """(dx, dy) shift of ``gray`` against ``reference`` in pixels, and their correlation after
    aligning (zero-mean normalized cross-correlation of the gradient images, -1..1).

    Gradient images are compared, not gray levels, so a change of light does not look like a
    change of view.
    """
    import cv2

    def edges(img: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        f = img.astype(np.float32)
        gx = cv2.Sobel(f, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(f, cv2.CV_32F, 0, 1, ksize=3)
        return np.asarray(cv2.magnitude(gx, gy), dtype=np.float32)

    ref, cur = edges(reference), edges(gray)
    window = cv2.createHanningWindow((ref.shape[1], ref.shape[0]), cv2.CV_32F)
    (dx, dy), _ = cv2.phaseCorrelate(ref, cur, window)
    m = np.array([[1, 0, -dx], [0, 1, -dy]], dtype=np.float32)
    aligned = np.asarray(cv2.warpAffine(cur, m, (cur.shape[1], cur.shape[0])), np.float32)
    h, w = ref.shape
    mx, my = min(w // 4, int(abs(dx)) + 4), min(h // 4, int(abs(dy)) + 4)
    a = ref[my : h - my, mx : w - mx].ravel()
    b = aligned[my : h - my, mx : w - mx].ravel()
    a = a - a.mean()
    b = b - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    corr = float((a * b).sum() / denom) if denom > 0 else 0.0
    return float(dx), float(dy), corr


@dataclass
class _Reference:
    background: npt.NDArray[np.float32]
    contrast: float
    sharpness: float
    since: float
    samples: int = 1
    flat_share: float = 0.0


class TamperRule:
    """Tamper detection for one camera; see the module docstring."""

    type = "tamper"
    Config = TamperRuleConfig
    ONSET_GAP_S = 1.0
    """A condition off for less than this does not restart its onset timer."""
    ADAPT_S = 120.0
    """Time constant of the reference's slow adaptation (light changing over the day)."""

    def __init__(self, params: TamperRuleConfig, *, schedule: ScheduleLike | None = None) -> None:
        self.params = params
        self._schedule: ScheduleLike = schedule or Always()
        ep = EpisodeParams(params.min_duration_s, params.clear_after_s, self.ONSET_GAP_S, 0.0)
        self._episodes = {
            kind: Episode(f"tamper/{kind}", self.type, None, ep, severity=params.severity)
            for kind in params.checks
        }
        self.ref: _Reference | None = None
        self._learning: list[tuple[Gray, ViewStats]] = []
        self._learn_start: float | None = None
        self._prev: Gray | None = None
        self._prev_ts: float | None = None
        self._moved_since: float | None = None
        self.last_measure: dict[str, float] = {}
        """The latest measurements (for health reports and for tuning)."""

    @classmethod
    def from_config(cls, cfg: TamperRuleConfig, ctx: RuleContext) -> TamperRule:
        return cls(cfg, schedule=ctx.schedule)

    def close(self, ts: float, reason: str) -> list[IncidentEvent]:
        events: list[IncidentEvent] = []
        for ep in self._episodes.values():
            events += ep.force_clear(ts, reason)
        return events

    @property
    def checks(self) -> Collection[TamperKind]:
        return self._episodes.keys()

    def active_kinds(self) -> list[str]:
        return [k for k, ep in self._episodes.items() if ep.active]

    def health(self) -> Mapping[str, Any]:
        return {"tamper": self.active_kinds(), "tamper_reference": self.ref is not None}

    def _learn(self, gray: Gray, stats: ViewStats, ts: float) -> None:
        if self._learn_start is None:
            self._learn_start = ts
        self._learning.append((gray, stats))
        if ts - self._learn_start >= self.params.learn_s and len(self._learning) >= 3:
            stack = np.stack([g.astype(np.float32) for g, _ in self._learning])
            self.ref = _Reference(
                background=np.median(stack, axis=0).astype(np.float32),
                contrast=float(np.median([s.contrast for _, s in self._learning])),
                sharpness=float(np.median([s.sharpness for _, s in self._learning])),
                flat_share=float(np.median([s.flat_share for _, s in self._learning])),
                since=ts,
                samples=len(self._learning),
            )
            self._learning = []
            log.debug("tamper reference learned: %s", self.last_measure)

    def _adapt(self, gray: Gray, stats: ViewStats, dt: float) -> None:
        assert self.ref is not None
        a = min(1.0, max(0.0, dt) / self.ADAPT_S)
        r = self.ref
        r.background += a * (gray.astype(np.float32) - r.background)
        r.contrast += a * (stats.contrast - r.contrast)
        r.sharpness += a * (stats.sharpness - r.sharpness)
        r.flat_share += a * (stats.flat_share - r.flat_share)

    def _conditions(self, gray: Gray, ts: float) -> tuple[dict[TamperKind, bool], ViewStats]:
        p = self.params
        stats = view_stats(gray)
        cond = dict.fromkeys(KINDS, False)
        m: dict[str, float] = {"contrast": stats.contrast, "sharpness": stats.sharpness}
        if self._prev is not None and self._prev.shape == gray.shape:
            m["changed"] = changed_fraction(self._prev, gray, p.frozen_level)
        ref = self.ref
        if ref is not None:
            m["contrast_ratio"] = stats.contrast / max(ref.contrast, 1e-6)
            ref_focus = ref.sharpness / max(ref.contrast * ref.contrast, 1.0)
            m["focus_ratio"] = stats.focus / max(ref_focus, 1e-9)
            m["flat_share"] = stats.flat_share
            if m["contrast_ratio"] < p.covered_contrast or (
                stats.flat_share >= p.covered_flat and ref.flat_share < p.covered_flat / 2
            ):
                cond["covered"] = True
        if not cond["covered"] and "changed" in m and m["changed"] < p.frozen_changed:
            cond["frozen"] = True
        if ref is not None and not (cond["covered"] or cond["frozen"]):
            if m["focus_ratio"] < p.defocus_ratio:
                cond["defocused"] = True
            elif "moved" in self._episodes:
                dx, dy, corr = registration(ref.background, gray)
                m.update(shift=float(np.hypot(dx, dy)) / gray.shape[1], correlation=corr)
                cond["moved"] = m["shift"] > p.moved_shift or corr < p.moved_correlation
        self.last_measure = {k: round(v, 5) for k, v in m.items()}
        return cond, stats

    def update_frame(self, sample: FrameSample) -> list[IncidentEvent]:
        ts = sample.ts
        scheduled = self._schedule.is_active(ts)
        if sample.gray is None:
            # no new frame: nothing to judge; an offline camera is the offline rule's business
            events: list[IncidentEvent] = []
            for ep in self._episodes.values():
                if not scheduled:
                    events += ep.step(ts, False, scheduled=False)
            return events
        gray = sample.gray
        cond, stats = self._conditions(gray, ts)
        prev_ts = self._prev_ts
        self._prev, self._prev_ts = gray, ts
        if self.ref is None and not any(cond.values()):
            self._learn(gray, stats, ts)
        events = []
        for kind, ep in self._episodes.items():
            details = {"kind": kind, **self.last_measure}
            events += ep.step(
                ts,
                cond[kind],
                scheduled=scheduled,
                count=0,
                details=details,
                signature=kind,
                clear_reason="view_restored",
            )
        if self.ref is not None:
            anything = any(cond.values()) or any(
                ep.phase.value != "idle" for ep in self._episodes.values()
            )
            if not anything and prev_ts is not None:
                self._adapt(gray, stats, ts - prev_ts)
            events += self._rebaseline(cond, gray, stats, ts)
        return events

    def _rebaseline(
        self, cond: dict[TamperKind, bool], gray: Gray, stats: ViewStats, ts: float
    ) -> list[IncidentEvent]:
        ep = self._episodes.get("moved")
        if ep is None or not cond["moved"]:
            self._moved_since = None
            return []
        if self._moved_since is None:
            self._moved_since = ts
        if ts - self._moved_since < self.params.rebaseline_after_s:
            return []
        log.info(
            "tamper: the view stayed moved for %.0f s; it is the new reference",
            ts - self._moved_since,
        )
        self.ref = _Reference(
            gray.astype(np.float32), stats.contrast, stats.sharpness, ts, 1, stats.flat_share
        )
        self._moved_since = None
        return ep.force_clear(ts, "rebaselined", details={"kind": "moved", **self.last_measure})
