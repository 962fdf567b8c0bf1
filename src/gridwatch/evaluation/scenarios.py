"""Evaluation scenarios on disk, and how their events are scored against the truth.

A scenario is a directory with

``config.yaml``
    a gridwatch config with one camera (its ``url`` is ignored: the clip replaces it);
``recipe.yaml`` *or* a clip (``clip.mp4``/``.mkv``/``.avi``) *or* ``data.yaml``
    the video: made from ``vtest.avi`` (see :mod:`gridwatch.evaluation.recipes`), shipped in
    the scenario, or fetched public footage with its own ground truth (below);
``truth.yaml``
    what should fire, and how that was decided::

        synthetic: false          # true when the incident itself was made by a recipe
        labelled_by: >-
          Watched frames 0-25 s at 1 s steps with the zone drawn ...
        clock: "2026-11-24T23:00:00+08:00"   # wall time of the first frame (schedules)
        incidents:
          - {type: loitering, zone: lamp-post, start_s: 4.0, end_s: 15.5, tolerance_s: 2}
          - {type: tamper, kind: covered, start_s: 10, end_s: 22}

Real footage with per-frame ground truth (``data.yaml``) cannot be committed: the scenario
names it relative to a data root, and the counting truth comes from the dataset's authors::

    scene: towncentre                 # scenarios of one scene are reported together
    video: towncentre-690x388/TownCentre_clip_41f_690x388_10fps.mp4   # or a list: first found
    ground_truth: towncentre-690x388/TownCentre_clip_41f_690x388_10fps.gt.txt   # MOT format
    fps: 10                           # video frames per second that GT frames follow
    frame_offset: 0                   # GT frame = round(video_s * fps) + 1 + frame_offset
    source: "github anubhav666/... (clip), RBastos36/SAVI (ground truth)"
    licence: "research use"

Relative paths are under the data root: ``gridwatch eval --data DIR``, else
``$GRIDWATCH_DATA``, else the first existing ``../shared/data`` relative to the current
directory or to any ancestor of the scenario directory; absolute paths are used as they are.
Such a scenario may say ``incidents: derived`` in ``truth.yaml``: its crowding incidents are
then computed at evaluation time from the ground truth's counts in each crowding rule's zone
(:func:`gridwatch.evaluation.ground_truth.derive_crowding_incidents`), never from our detector.
When the data is missing, :func:`resolve_data` raises :class:`DataMissing`; the runner turns
that into an error under CI (``CI=true``) and into "not run" elsewhere.

Scoring, per rule type: every ``raised`` event is matched to at most one truth incident of the
same type (and zone, and ``kind`` where the truth names one) whose interval, widened by its
tolerance, contains the raise; a truth incident matched is a true positive and its *onset
delay* is raise time − ``start_s``; any other raise is a false positive (including a second
raise for an incident already matched: one incident must be one alert); a truth incident never
matched is a miss. Only the rule types the scenario's config runs are scored in it.
"""

from __future__ import annotations

import os
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
DATA_KEYS = {
    "scene", "video", "ground_truth", "fps", "frame_offset", "source", "licence", "notes",
}  # fmt: skip
DERIVED = "derived"
"""``incidents: derived`` in ``truth.yaml``: the incidents come from the data's ground truth."""
DATA_ENV = "GRIDWATCH_DATA"
"""Environment variable naming the data root (``--data`` on ``gridwatch eval`` wins)."""
SHARED_DATA = Path("..") / "shared" / "data"


class ScenarioError(ValueError):
    """A scenario directory that cannot be evaluated; the message names the file."""


class DataMissing(ScenarioError):
    """A real-data scenario whose video or ground truth is not on this machine; the message
    names the missing file and where the data comes from."""


@dataclass(frozen=True)
class DataSpec:
    """``data.yaml``: fetched footage and its ground truth (see the module docstring)."""

    scene: str
    video: tuple[str, ...]
    ground_truth: str
    fps: float | None
    frame_offset: int
    source: str
    licence: str


@dataclass(frozen=True)
class ResolvedData:
    video: Path
    ground_truth: Path
    root: Path | None


def data_root(scenario_dir: Path, explicit: Path | None = None) -> Path | None:
    """Where relative data paths start: ``explicit``, ``$GRIDWATCH_DATA``, or the first
    existing ``../shared/data`` from the current directory or an ancestor of the scenario
    (so a checkout beside ``shared/`` finds it from anywhere inside); ``None``: none found."""
    if explicit is not None:
        return explicit
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    starts = [Path.cwd(), *scenario_dir.resolve().parents]
    for start in starts:
        candidate = (start / SHARED_DATA).resolve()
        if candidate.is_dir():
            return candidate
    return None


def resolve_data(scenario: Scenario, explicit: Path | None = None) -> ResolvedData:
    """The scenario's video and ground truth on this machine, or :class:`DataMissing`."""
    spec = scenario.data
    if spec is None:
        raise ScenarioError(f"{scenario.path}: no data.yaml")
    root = data_root(scenario.path, explicit)

    def place(rel: str) -> Path:
        p = Path(rel).expanduser()
        if p.is_absolute():
            return p
        return (root if root is not None else SHARED_DATA) / p

    def missing(what: str, tried: list[Path]) -> DataMissing:
        where = f"data root {root}" if root is not None else "no data root found"
        return DataMissing(
            f"{scenario.path / 'data.yaml'}: {what} not found ({', '.join(map(str, tried))}; "
            f"{where}). It comes from: {spec.source} (licence: {spec.licence}). Put it under "
            f"../shared/data, or point --data or ${DATA_ENV} at a copy."
        )

    videos = [place(v) for v in spec.video]
    video = next((v for v in videos if v.is_file()), None)
    if video is None:
        raise missing("video", videos)
    gt = place(spec.ground_truth)
    if not gt.is_file():
        raise missing("ground truth", [gt])
    return ResolvedData(video, gt, root)


def _load_data_spec(path: Path) -> DataSpec:
    raw = _read_yaml(path) or {}
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path}: must be a mapping")
    unknown = set(raw) - DATA_KEYS
    if unknown:
        raise ScenarioError(f"{path}: unknown keys {sorted(unknown)}")
    for key in ("video", "ground_truth", "source", "licence"):
        if not raw.get(key):
            raise ScenarioError(f"{path}: needs {key}")
    video = raw["video"]
    videos = tuple(str(v) for v in (video if isinstance(video, list) else [video]))
    try:
        fps = None if raw.get("fps") is None else float(raw["fps"])
        offset = int(raw.get("frame_offset", 0))
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"{path}: fps / frame_offset: {exc}") from None
    return DataSpec(
        scene=str(raw.get("scene") or Path(videos[0]).stem),
        video=videos,
        ground_truth=str(raw["ground_truth"]),
        fps=fps,
        frame_offset=offset,
        source=" ".join(str(raw["source"]).split()),
        licence=" ".join(str(raw["licence"]).split()),
    )


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
    data: DataSpec | None = None
    derived: bool = False
    """The incidents are derived from the data's ground truth when the scenario runs."""

    @property
    def scene(self) -> str | None:
        """The scene a real-data scenario shows (its results are grouped by it)."""
        return None if self.data is None else self.data.scene

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
    for name in ("min_dwell_s", "min_duration_s", "offline_after_s", "min_still_s"):
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
    data_path = path / "data.yaml"
    data = _load_data_spec(data_path) if data_path.is_file() else None
    derived = truth.get("incidents") == DERIVED
    if derived and data is None:
        raise ScenarioError(f"{truth_path}: incidents: {DERIVED} needs a data.yaml")
    raw_incidents = [] if derived else truth.get("incidents") or []
    if not isinstance(raw_incidents, list):
        raise ScenarioError(f"{truth_path}: incidents must be a list or {DERIVED!r}")
    incidents = []
    for i, inc in enumerate(raw_incidents):
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
    if recipe is None and not clips and data is None:
        raise ScenarioError(
            f"{path}: needs recipe.yaml, data.yaml or a clip ({', '.join(CLIP_SUFFIXES)})"
        )
    if data is not None and (recipe is not None or clips):
        raise ScenarioError(f"{path}: data.yaml names the video: no recipe.yaml or clip too")
    return Scenario(
        name=path.name,
        path=path,
        config=config,
        synthetic=bool(truth.get("synthetic", False)),
        labelled_by=str(truth["labelled_by"]).strip(),
        clock=None if truth.get("clock") is None else str(truth["clock"]),
        incidents=tuple(incidents),
        recipe=recipe,
        clip=clips[0] if recipe is None and clips else None,
        camera=truth.get("camera"),
        data=data,
        derived=derived,
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
