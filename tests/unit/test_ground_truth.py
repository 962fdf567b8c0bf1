"""Ground truth for the real-data scenarios: MOT parsing, time → frame, counts per zone with the
rules' own in-zone test, incidents derived with the crowding contract, and where the data is
looked for. Pure: no video is decoded."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from gridwatch.evaluation.ground_truth import (
    GroundTruth,
    GroundTruthError,
    derive_crowding_incidents,
    parse_mot,
)
from gridwatch.evaluation.scenarios import (
    DATA_ENV,
    DataMissing,
    ScenarioError,
    data_root,
    load_scenario,
    resolve_data,
)
from gridwatch.model import Detections, IncidentState
from gridwatch.rules.crowding import CrowdingRule, CrowdingRuleConfig
from gridwatch.rules.zones import Zone

BOTTOM = Zone("bottom", [(0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)])


def test_parse_mot_skips_ignored_rows_and_non_people() -> None:
    text = (
        "1,1,10,20,30,40,1,-1,-1,-1\n"  # MOT15: 10 columns, kept
        "1,2,0,0,5,5,0,-1,-1,-1\n"  # flag 0: ignored by the benchmark
        "2,3,1,2,3,4,1,1,1\n"  # MOT16+: class 1 pedestrian
        "2,4,1,2,3,4,1,3,1\n"  # class 3: a car
        "2,5,1,2,3,4,1,7,0.5\n"  # class 7: static person
        "\n"
    )
    boxes = parse_mot(text)
    assert boxes[1].tolist() == [[10.0, 20.0, 40.0, 60.0]]
    assert boxes[2].tolist() == [[1.0, 2.0, 4.0, 6.0], [1.0, 2.0, 4.0, 6.0]]
    with pytest.raises(GroundTruthError, match=r"gt.txt:2"):
        parse_mot("1,1,1,1,1,1,1\n1,x,1\n", source="gt.txt")


def test_frame_mapping_with_fps_and_offset() -> None:
    gt = GroundTruth({3: np.zeros((0, 4), np.float32), 9: np.zeros((0, 4), np.float32)},
                     100, 100, fps=25, frame_offset=2)  # fmt: skip
    assert gt.frame_at(0.0) == 3
    assert gt.frame_at(0.04) == 4
    assert gt.frame_at(0.0199) == 3  # the nearest frame
    assert gt.time_of(gt.frame_at(0.24)) == pytest.approx(0.24)
    assert gt.covers(0.0)
    assert gt.covers(0.24)  # frame 9
    assert not gt.covers(0.28)  # after the last annotated frame
    assert [t for t, _ in gt.series(BOTTOM)] == pytest.approx([i * 0.04 for i in range(7)])


def test_truth_count_is_the_crowding_rules_count() -> None:
    """Truth and detector use one definition of in-zone: the feet, clipped to the frame."""
    rng = np.random.default_rng(3)
    w, h = 640, 480
    left = rng.uniform(-40, w, 60)
    top = rng.uniform(-40, h, 60)
    boxes = np.stack([left, top, left + rng.uniform(5, 80, 60), top + rng.uniform(10, 200, 60)], 1)
    gt = GroundTruth({1: boxes.astype(np.float32)}, w, h, fps=10)
    zone = Zone("z", [(0.1, 0.3), (0.9, 0.35), (0.7, 1.0), (0.05, 0.95)])
    rule = CrowdingRule(zone, CrowdingRuleConfig(type="crowding", zone="z", min_count=1))
    detections = Detections.from_arrays(
        xyxy=boxes, confidence=np.ones(60), class_id=np.zeros(60), image_size=(w, h)
    )
    expected, _ = rule.count_in_zone(detections)
    assert 0 < gt.count(zone, 0.0) == expected < 60


def _people(n: int) -> Detections:
    xyxy = [[10.0 * i, 60.0, 10.0 * i + 8, 90.0] for i in range(n)]
    return Detections.from_arrays(
        xyxy=np.asarray(xyxy).reshape(-1, 4), confidence=np.ones(n), class_id=np.zeros(n),
        image_size=(100, 100),
    )  # fmt: skip


@pytest.mark.parametrize("seed", range(20))
def test_derived_incidents_follow_the_crowding_rule(seed: int) -> None:
    """The derivation re-states the contract; this keeps both from drifting apart."""
    rnd = random.Random(seed)
    params = CrowdingRuleConfig(
        type="crowding",
        zone="z",
        count_window_s=0,
        min_count=rnd.randint(2, 5),
        min_duration_s=rnd.choice([0.0, 0.5, 1.0, 2.0]),
        clear_after_s=rnd.choice([0.0, 0.5, 1.5, 4.0]),
        onset_gap_s=rnd.choice([0.0, 0.3, 1.0, 2.0]),
    )
    step = rnd.choice([0.1, 0.25, 0.5])
    count = 3
    series = []
    for i in range(200):
        count = max(0, min(8, count + rnd.choice([-1, 0, 0, 0, 1])))
        series.append((round(i * step, 6), count))
    rule = CrowdingRule(BOTTOM, params)
    raised, cleared = [], []
    for t, n in series:
        for e in rule.update(_people(n), t):
            if e.state is IncidentState.RAISED:
                raised.append((e.started_at, e.observed_at))
            elif e.state is IncidentState.CLEARED:
                cleared.append(e.observed_at)
    derived = derive_crowding_incidents(
        series, params.min_count, params.min_duration_s, params.clear_after_s, params.onset_gap_s
    )
    assert [(d.start_s, d.raised_s) for d in derived] == raised
    ended = [d for d in derived if d.end_s is not None]
    assert len(ended) == len(cleared)
    for d, clear_ts in zip(ended, cleared, strict=True):
        assert d.end_s is not None
        assert d.raised_s <= d.end_s < clear_ts
        assert clear_ts - d.end_s >= params.clear_after_s - 1e-9


def test_derived_incident_open_at_the_end_has_no_end() -> None:
    series = [(i * 0.5, 5) for i in range(10)]
    [inc] = derive_crowding_incidents(series, 4, 1.0, 2.0, 1.0)
    assert (inc.start_s, inc.raised_s, inc.end_s, inc.peak) == (0.0, 1.0, None, 5)
    assert derive_crowding_incidents(series, 6, 1.0, 2.0, 1.0) == []


# -- data.yaml scenarios ---------------------------------------------------------------------

CONFIG = """\
detector: {backend: openvino}
grids: [{id: eval}]
cameras:
- id: cam
  grid: eval
  url: data.mp4
  analysis_fps: 5
  zones: [{id: z, polygon: [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]}]
  rules: [{type: crowding, zone: z, min_count: 2, min_duration_s: 1}]
"""
DATA = """\
scene: demo
video: [demo/clip.mp4, demo/other.mp4]
ground_truth: demo/gt.txt
fps: 10
source: made up for a test
licence: CC0
"""


def _scenario(root: Path, truth: str = "incidents: derived\n", data: str | None = DATA) -> Path:
    sc = root / "tests" / "scenarios" / "demo-crowd"
    sc.mkdir(parents=True)
    (sc / "config.yaml").write_text(CONFIG)
    (sc / "truth.yaml").write_text(f"labelled_by: from the dataset's ground truth\n{truth}")
    if data is not None:
        (sc / "data.yaml").write_text(data)
    return sc


def test_a_data_scenario_loads_with_derived_incidents(tmp_path: Path) -> None:
    s = load_scenario(_scenario(tmp_path))
    assert s.derived
    assert s.incidents == ()
    assert s.data is not None
    assert s.scene == "demo"
    assert s.data.video == ("demo/clip.mp4", "demo/other.mp4")
    assert (s.data.fps, s.data.frame_offset) == (10.0, 0)
    assert s.recipe is None
    assert s.clip is None


def test_derived_needs_data_and_data_needs_its_keys(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"needs a data\.yaml"):
        load_scenario(_scenario(tmp_path / "a", data=None))
    with pytest.raises(ScenarioError, match="needs source"):
        load_scenario(_scenario(tmp_path / "b", data="video: x.mp4\nground_truth: gt.txt\n"))
    with pytest.raises(ScenarioError, match="unknown keys"):
        load_scenario(_scenario(tmp_path / "c", data=DATA + "colour: red\n"))


def test_data_root_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sc = _scenario(tmp_path / "work" / "main")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(DATA_ENV, raising=False)
    assert data_root(sc) is None
    shared = tmp_path / "work" / "shared" / "data"
    shared.mkdir(parents=True)
    assert data_root(sc) == shared.resolve()  # ../shared/data beside an ancestor
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "env"))
    assert data_root(sc) == tmp_path / "env"
    assert data_root(sc, tmp_path / "flag") == tmp_path / "flag"


def test_resolve_data_finds_the_first_video_or_says_where_it_comes_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DATA_ENV, raising=False)
    s = load_scenario(_scenario(tmp_path / "repo"))
    root = tmp_path / "data"
    with pytest.raises(DataMissing, match=r"video not found .*made up for a test.*--data"):
        resolve_data(s, root)
    (root / "demo").mkdir(parents=True)
    (root / "demo" / "other.mp4").write_bytes(b"")
    with pytest.raises(DataMissing, match="ground truth not found"):
        resolve_data(s, root)
    (root / "demo" / "gt.txt").write_text("1,1,1,1,1,1,1\n")
    found = resolve_data(s, root)
    assert found.video == root / "demo" / "other.mp4"
    assert found.ground_truth == root / "demo" / "gt.txt"
