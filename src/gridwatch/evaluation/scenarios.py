"""Evaluation scenarios on disk, and how their events are scored against the truth.

A scenario is a directory with

``config.yaml``
    a gridwatch config with one camera (its ``url`` is ignored: the clip replaces it);
``recipe.yaml`` *or* a clip (``clip.mp4``/``.mkv``/``.avi``)
    the video (see :mod:`gridwatch.evaluation.recipes`);
``truth.yaml``
    what should fire, and how that was decided::

        synthetic: false          # true when the incident itself was made by a recipe
        labelled_by: >-
          Watched frames 0-25 s at 1 s steps with the zone drawn ...
        clock: "2026-11-24T23:00:00+08:00"   # wall time of the first frame (schedules)
        incidents:
          - {type: loitering, zone: lamp-post, start_s: 4.0, end_s: 15.5, tolerance_s: 2}
          - {type: tamper, kind: covered, start_s: 10, end_s: 22}

Scoring, per rule type: every ``raised`` event is matched to at most one truth incident of the
same type (and zone, and ``kind`` where the truth names one) whose interval, widened by its
tolerance, contains the raise; a truth incident matched is a true positive and its *onset
delay* is raise time − ``start_s``; any other raise is a false positive (including a second
raise for an incident already matched: one incident must be one alert); a truth incident never
matched is a miss. Only the rule types the scenario's config runs are scored in it.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gridwatch.config import GridwatchConfig, load_config
from gridwatch.evaluation.recipes import Recipe
from gridwatch.evaluation.replay import ReplayEvent, StreamFault
from gridwatch.model import IncidentState

CLIP_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov")
TRUTH_KEYS = {"synthetic", "labelled_by", "clock", "incidents", "notes", "camera"}
INCIDENT_KEYS = {"type", "zone", "kind", "start_s", "end_s", "tolerance_s", "note"}


class ScenarioError(ValueError):
    """A scenario directory that cannot be evaluated; the message names the file."""


@dataclass(frozen=True)
class TruthIncident:
    type: str
    zone: str | None
    start_s: float
    end_s: float | None
    tolerance_s: float = 2.0
    kind: str | None = None

    def matches(self, ev: ReplayEvent, clip_end_s: float) -> bool:
        e = ev.event
        if e.type != self.type:
            return False
        if self.zone is not None and e.zone_id != self.zone:
            return False
        if self.kind is not None and e.details.get("kind") != self.kind:
            return False
        end = clip_end_s if self.end_s is None else self.end_s
        return self.start_s - self.tolerance_s <= ev.video_s <= end + self.tolerance_s


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path
    config: GridwatchConfig
    synthetic: bool
    labelled_by: str
    clock: str | None
    incidents: tuple[TruthIncident, ...]
    recipe: Recipe | None
    clip: Path | None
    camera: str | None = None

    @property
    def faults(self) -> tuple[StreamFault, ...]:
        return self.recipe.stream if self.recipe is not None else ()

    @property
    def rule_types(self) -> list[str]:
        cam = (
            self.config.cameras[0]
            if self.camera is None
            else next(c for c in self.config.cameras if c.id == self.camera)
        )
        return sorted({r.type for r in cam.rules})

    def onset_budget_s(self, rule_type: str) -> float:
        """The longest acceptable onset delay: the rule's configured duration + 2 s."""
        cam = self.config.cameras[0]
        budgets = [configured_delay(r) for r in cam.rules if r.type == rule_type]
        return max(budgets, default=0.0) + 2.0


def configured_delay(rule: Any) -> float:
    """How long a rule waits by design before raising (dwell, duration, offline timeout)."""
    for name in ("min_dwell_s", "min_duration_s", "offline_after_s"):
        v = getattr(rule, name, None)
        if isinstance(v, (int, float)):
            return float(v)
    return 0.0


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: {exc}") from exc


def load_scenario(path: Path) -> Scenario:
    truth_path = path / "truth.yaml"
    if not truth_path.is_file():
        raise ScenarioError(f"{path}: no truth.yaml")
    truth = _read_yaml(truth_path) or {}
    if not isinstance(truth, dict):
        raise ScenarioError(f"{truth_path}: must be a mapping")
    unknown = set(truth) - TRUTH_KEYS
    if unknown:
        raise ScenarioError(f"{truth_path}: unknown keys {sorted(unknown)}")
    if not str(truth.get("labelled_by", "")).strip():
        raise ScenarioError(f"{truth_path}: say how the truth was labelled (labelled_by)")
    incidents = []
    for i, inc in enumerate(truth.get("incidents") or []):
        bad = set(inc) - INCIDENT_KEYS
        if bad or "type" not in inc or "start_s" not in inc:
            raise ScenarioError(f"{truth_path}: incidents[{i}] needs type and start_s; "
                                f"unknown keys {sorted(bad)}")  # fmt: skip
        incidents.append(
            TruthIncident(
                type=str(inc["type"]),
                zone=inc.get("zone"),
                start_s=float(inc["start_s"]),
                end_s=None if inc.get("end_s") is None else float(inc["end_s"]),
                tolerance_s=float(inc.get("tolerance_s", 2.0)),
                kind=inc.get("kind"),
            )
        )
    config = load_config(path / "config.yaml")
    recipe_path = path / "recipe.yaml"
    recipe = Recipe.from_mapping(_read_yaml(recipe_path) or {}) if recipe_path.is_file() else None
    clips = sorted(p for p in path.iterdir() if p.suffix.lower() in CLIP_SUFFIXES)
    if recipe is None and not clips:
        raise ScenarioError(f"{path}: needs recipe.yaml or a clip ({', '.join(CLIP_SUFFIXES)})")
    return Scenario(
        name=path.name,
        path=path,
        config=config,
        synthetic=bool(truth.get("synthetic", False)),
        labelled_by=str(truth["labelled_by"]).strip(),
        clock=None if truth.get("clock") is None else str(truth["clock"]),
        incidents=tuple(incidents),
        recipe=recipe,
        clip=clips[0] if recipe is None else None,
        camera=truth.get("camera"),
    )


def find_scenarios(root: Path) -> list[Path]:
    """Scenario directories under ``root`` (any depth), sorted; ``root`` itself if it is one."""
    if (root / "truth.yaml").is_file():
        return [root]
    return sorted(p.parent for p in root.rglob("truth.yaml"))


# -- scoring ----------------------------------------------------------------------------------


@dataclass
class Tally:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    onsets: list[float] = field(default_factory=list)
    late: int = 0
    """True positives whose onset exceeded the rule's configured duration + 2 s."""

    def add(self, other: Tally) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.onsets += other.onsets
        self.late += other.late

    @property
    def precision(self) -> float | None:
        return None if self.tp + self.fp == 0 else self.tp / (self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return None if self.tp + self.fn == 0 else self.tp / (self.tp + self.fn)

    def as_json(self) -> dict[str, Any]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 3)

        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": r(self.precision),
            "recall": r(self.recall),
            "onset_median_s": r(statistics.median(self.onsets)) if self.onsets else None,
            "onset_max_s": r(max(self.onsets)) if self.onsets else None,
            "onset_late": self.late,
        }


@dataclass
class Match:
    """The scoring of one raised event or one missed truth incident (for reports)."""

    rule_type: str
    outcome: str  # tp | fp | fn
    video_s: float | None
    onset_s: float | None = None
    truth: TruthIncident | None = None
    note: str = ""


def score(
    scenario: Scenario, events: Sequence[ReplayEvent], clip_end_s: float
) -> tuple[dict[str, Tally], list[Match]]:
    """Per rule type tallies for one scenario (see the module docstring for the rules)."""
    types = set(scenario.rule_types) | {t.type for t in scenario.incidents}
    tallies = {t: Tally() for t in types}
    matches: list[Match] = []
    matched: set[int] = set()
    for ev in events:
        if ev.event.state is not IncidentState.RAISED:
            continue
        t = ev.event.type
        tally = tallies.setdefault(t, Tally())
        hit = next(
            (
                i
                for i, truth in enumerate(scenario.incidents)
                if i not in matched and truth.matches(ev, clip_end_s)
            ),
            None,
        )
        if hit is None:
            dup = any(truth.matches(ev, clip_end_s) for truth in scenario.incidents)
            tally.fp += 1
            matches.append(Match(t, "fp", ev.video_s, note="duplicate" if dup else "no truth"))
            continue
        matched.add(hit)
        truth = scenario.incidents[hit]
        onset = ev.video_s - truth.start_s
        tally.tp += 1
        tally.onsets.append(onset)
        if onset > scenario.onset_budget_s(t):
            tally.late += 1
        matches.append(Match(t, "tp", ev.video_s, onset, truth))
    for i, truth in enumerate(scenario.incidents):
        if i not in matched:
            tallies.setdefault(truth.type, Tally()).fn += 1
            matches.append(Match(truth.type, "fn", None, truth=truth))
    return tallies, matches


@dataclass
class Report:
    """Tallies per rule type, overall and split real / synthetic."""

    overall: dict[str, Tally] = field(default_factory=dict)
    real: dict[str, Tally] = field(default_factory=dict)
    synthetic: dict[str, Tally] = field(default_factory=dict)

    def add(self, scenario: Scenario, tallies: Mapping[str, Tally]) -> None:
        part = self.synthetic if scenario.synthetic else self.real
        for t, tally in tallies.items():
            self.overall.setdefault(t, Tally()).add(tally)
            part.setdefault(t, Tally()).add(tally)

    def as_json(self) -> dict[str, Any]:
        """``{rule type: {tp, fp, fn, precision, recall, onset_median_s, onset_max_s,
        onset_late, real: {...}, synthetic: {...}}}``."""
        out: dict[str, Any] = {}
        for t in sorted(self.overall):
            entry = self.overall[t].as_json()
            entry["real"] = self.real.get(t, Tally()).as_json()
            entry["synthetic"] = self.synthetic.get(t, Tally()).as_json()
            out[t] = entry
        return out


def rule_types_of(scenarios: Iterable[Scenario]) -> list[str]:
    return sorted({t for s in scenarios for t in s.rule_types})
