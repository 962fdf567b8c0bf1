"""The evaluation harness on the shipped scenario suite (real vtest footage, cut and transformed
by recipes): precision and recall of every rule type at least 0.9, onsets within each rule's
configured duration + 2 s; and the ``gridwatch replay`` / ``gridwatch eval`` command lines.

The whole suite runs (39 scenarios, about 1,900 analysed frames): on the 2-core reference box
about 3 minutes the first time with nothing else running (the detector on every analysed frame;
far longer when other test runs share the cores), then 25-40 s, because detections are cached per
clip and detector under ``$GRIDWATCH_CACHE/detections`` (decoding, tracking and the rules still
run every time).

The crowding scenarios on real footage with the datasets' own ground truth (``data.yaml``, read
from ``../shared/data``; 11 scenarios, about 900 analysed frames, 10-40 s) are scored apart:
their truth comes from people counted by the datasets' authors, and our counting does not meet
it yet, so their gates are the named constants below, to be tightened as counting improves.
Without the data they are skipped here (not run), except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gridwatch.evaluation.recipes import build_clip
from gridwatch.evaluation.runner import DetectorPool, EvalResult, evaluate, in_ci, run_scenario
from gridwatch.evaluation.scenarios import (
    DataMissing,
    Report,
    Scenario,
    data_root,
    find_scenarios,
    load_scenario,
)

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "tests" / "scenarios"
RULE_TYPES = {
    "crowding", "loitering", "intrusion", "line_crossing", "vehicle_stop", "fall", "tamper",
    "offline", "abandoned_object",
}  # fmt: skip
GRIDWATCH = Path(sys.executable).with_name("gridwatch")
GROUND_TRUTH_RULE_TYPES = {"running", "gathering", "density"}
"""Rule types scored only on real footage, their truth derived from the datasets' ground truth
(their positives appear when the scenarios run, not in truth.yaml)."""
# Their gates (precision, recall), measured 2026-12-05 on PETS09-S2L1 and TownCentre with the
# default model (docs/evaluation.md): running 0.33 / 0.50 (our tracks put walkers the truth has
# at 1.8-1.9 m/s at 2.2-2.4, so a 2.0 m/s limit raises false alarms; 2.5 m/s and the two-runner
# scatter are found, and 3.0 m/s stays quiet on both scenes), gathering 1.00 / 0.60, density
# 1.00 / 1.00.
GROUND_TRUTH_GATES = {"running": (0.3, 0.5), "gathering": (0.9, 0.6), "density": (0.9, 0.9)}

# Gates of the real-data (ground truth) crowding scenes. Issue 12's target is a count within
# 15 % MAPE of the truth on dense scenes (towncentre), steadier than the truth's own changes.
# Measured with the default model on 2026-12-05 (docs/evaluation.md): towncentre 9.1 % pooled
# over its zones (street 8.6 %, near 8.8 %, far 9.9 %), spread 0.11 against the truth's 0.22;
# before the counter and the closer look: 30 %, spread 1.40. The MAPE gate applies to the
# scene's figure pooled over its zones. Incident gates per scene are looser where the scenes
# are hard (TUD-Campus: a low camera, 2.8 s; measured precision 0.50, recall 0.67).
DENSE_SCENES = ("towncentre",)
DENSE_SCENE_MAX_MAPE: float | None = 15.0
DENSE_SCENE_MIN_PRECISION_RECALL = 0.9
REAL_DATA_MIN_PRECISION: float | None = 0.5
REAL_DATA_MIN_RECALL: float | None = 0.6
DATA_SCENES = {"pets09-s2l1", "towncentre", "tud-campus"}


@pytest.fixture(scope="module")
def suite() -> EvalResult:
    return evaluate(SCENARIOS)


def test_suite_has_positives_and_negatives_for_every_rule_type() -> None:
    scenarios = [load_scenario(p) for p in find_scenarios(SCENARIOS)]
    positives = {t.type for s in scenarios for t in s.incidents}
    negatives = {
        rt for s in scenarios for rt in s.rule_types if rt not in {t.type for t in s.incidents}
    }
    assert positives == RULE_TYPES
    assert negatives == RULE_TYPES | GROUND_TRUTH_RULE_TYPES
    for s in scenarios:
        assert len(s.labelled_by) > 40, f"{s.name}: say how the truth was labelled"
        made_by_recipe = s.recipe is not None and (s.recipe.ops or s.recipe.stream)
        if s.incidents and not s.synthetic:
            # a real positive's incident must be in the footage, not made by the recipe
            assert not made_by_recipe or all(o["op"] == "crop" for o in s.recipe.ops), s.name  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def real_data() -> EvalResult:
    """Only the scenarios on real footage with ground truth (quick once detections are cached)."""
    result = evaluate(SCENARIOS, only=lambda s: s.data is not None)
    missing = [r.not_run for r in result.scenarios if r.not_run is not None]
    if missing:  # under CI evaluate() already raised DataMissing; say so again if it did not
        if in_ci():
            pytest.fail(f"real footage missing under CI: {missing[0]}")
        pytest.skip(f"real footage not here: {missing[0]}")
    return result


def _hand_labelled(suite: EvalResult) -> Report:
    """The suite's report without the ground-truth scenarios, which have their own gates."""
    report = Report()
    for r in suite.scenarios:
        if r.scenario.data is None:
            report.add(r.scenario, r.tallies)
    return report


@pytest.mark.timeout(1800)
def test_precision_recall_and_onset_per_rule_type(suite: EvalResult) -> None:
    report = _hand_labelled(suite).as_json()
    print(json.dumps({t: {k: v for k, v in r.items() if k not in ("real", "synthetic")}
                      for t, r in report.items()}, indent=1))  # fmt: skip
    assert set(report) == RULE_TYPES
    for rule_type, r in report.items():
        assert (r["precision"] or 0.0) >= 0.9, (rule_type, r)  # None (no raise at all) fails
        assert (r["recall"] or 0.0) >= 0.9, (rule_type, r)
        assert r["onset_late"] == 0, (rule_type, r)
    # real and synthetic are reported apart; a fall is only ever synthetic here
    assert report["fall"]["real"]["tp"] == 0
    assert report["fall"]["synthetic"]["tp"] >= 3
    assert report["fall"]["real"]["fp"] == 0  # the jacket on the lawn never raised
    assert report["loitering"]["real"]["tp"] >= 2
    assert report["intrusion"]["real"]["tp"] >= 2


def test_every_match_is_explained(suite: EvalResult) -> None:
    """Each scenario's matches are explained: every raise is a tp or an fp, every truth a tp or
    an fn, and onsets are measured from the labelled start."""
    for r in suite.scenarios:
        truths = len(r.scenario.incidents)
        tp = sum(m.outcome == "tp" for m in r.matches)
        fn = sum(m.outcome == "fn" for m in r.matches)
        assert tp + fn == truths, r.scenario.name
        for m in r.matches:
            if m.outcome == "tp":
                assert m.truth is not None
                assert m.onset_s is not None
                assert m.video_s is not None
                assert m.onset_s == pytest.approx(m.video_s - m.truth.start_s)


def _with_crowding(sc: Scenario, **update: object) -> Scenario:
    """``sc`` with its crowding rule's settings changed (a wrongly configured rule)."""
    raw = sc.config.model_dump()
    for rule in raw["cameras"][0]["rules"]:
        rule.update(update)
    return dataclasses.replace(sc, config=type(sc.config).model_validate(raw))


def test_scoring_catches_a_wrong_rule() -> None:
    """A rule that fires where the truth is quiet scores a false positive; one that never fires
    where the truth has an incident scores a miss; the right rule scores one true positive.
    (Real runs of the crowding rule on the gate-apron footage, thresholds made wrong.)"""
    pool = DetectorPool()
    crowd = load_scenario(SCENARIOS / "crowding" / "gate-apron-crowd")
    quiet = load_scenario(SCENARIOS / "crowding" / "gate-apron-under-threshold")
    right = run_scenario(crowd, pool).tallies["crowding"]
    assert (right.tp, right.fp, right.fn) == (1, 0, 0)
    too_high = run_scenario(_with_crowding(crowd, min_count=50), pool).tallies["crowding"]
    assert (too_high.tp, too_high.fp, too_high.fn) == (0, 0, 1)
    too_low = run_scenario(_with_crowding(quiet, min_count=2), pool)
    tally = too_low.tallies["crowding"]
    assert tally.fp >= 1
    assert tally.tp == 0
    assert next(m.note for m in too_low.matches if m.outcome == "fp") == "no truth"


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "YOLO_OFFLINE": "1", "COLUMNS": "120"}
    return subprocess.run(
        [str(GRIDWATCH), *args], capture_output=True, text=True, timeout=timeout, env=env,
        check=False,
    )  # fmt: skip


def test_replay_cli_prints_json_lines(tmp_path: Path) -> None:
    scenario = load_scenario(SCENARIOS / "tamper" / "lens-covered")
    assert scenario.recipe is not None
    clip = build_clip(scenario.recipe)
    r = _run(
        "replay", "--config", str(scenario.path / "config.yaml"), "--video", str(clip), "--json",
        "--start", "2026-11-24T10:00:00",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(x["type"], x["state"]) for x in lines] == [("tamper", "raised"), ("tamper", "cleared")]
    raised = lines[0]
    assert {"type", "state", "camera_id", "zone_id", "video_s"} <= set(raised)
    assert raised["camera_id"] == "vtest"
    assert raised["zone_id"] is None
    assert raised["details"]["kind"] == "covered"
    assert 14.5 <= raised["video_s"] <= 17.0  # covered at 10 s + min_duration 5 s
    assert raised["observed_at"].startswith("2026-11-24T02:")  # 10:00 Shanghai = 02:00 UTC
    assert lines[1]["incident_id"] == raised["incident_id"]


def test_replay_cli_human_output_and_errors(tmp_path: Path) -> None:
    scenario = load_scenario(SCENARIOS / "offline" / "short-dropout")
    assert scenario.recipe is not None
    clip = build_clip(scenario.recipe)
    r = _run("replay", "--config", str(scenario.path / "config.yaml"), "--video", str(clip))
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    assert "0 events" in r.stderr
    bad = _run("replay", "--config", str(scenario.path / "config.yaml"), "--video", "nope.mp4")
    assert bad.returncode == 2
    assert "no such file" in bad.stderr


def test_eval_cli_writes_json_keyed_by_rule_type(tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    r = _run("eval", str(SCENARIOS / "offline"), "--json", str(out), "-v")
    assert r.returncode == 0, r.stderr
    assert "camera-silent [synthetic]" in r.stdout
    assert "offline" in r.stdout
    data = json.loads(out.read_text())
    assert set(data) == {"offline", "tamper"}  # the offline scenarios run both frame rules
    for key in ("tp", "fp", "fn", "precision", "recall", "onset_median_s", "onset_max_s"):
        assert key in data["offline"]
    assert data["offline"]["tp"] == 2
    assert data["offline"]["fp"] == 0
    assert data["offline"]["synthetic"]["tp"] == 2
    assert data["offline"]["real"]["tp"] == 0
    assert data["tamper"]["fp"] == 0


# -- real footage with the datasets' ground truth ----------------------------------------------


def test_real_data_scenarios_derive_their_truth_from_the_ground_truth() -> None:
    scenarios = [load_scenario(p) for p in find_scenarios(SCENARIOS)]
    data = [s for s in scenarios if s.data is not None]
    assert {s.scene for s in data} == DATA_SCENES
    for s in data:
        assert s.derived, f"{s.name}: crowding truth must come from the ground truth"
        assert not s.synthetic
        assert set(s.rule_types) in ({"crowding"}, *({t} for t in GROUND_TRUTH_RULE_TYPES))
        assert s.data is not None
        assert s.data.source
        assert s.data.licence
        assert s.config.detector.backend == "openvino"


@pytest.mark.timeout(900)
def test_real_data_count_error_and_incidents_per_scene(real_data: EvalResult) -> None:
    scenes = real_data.scenes
    print(json.dumps({n: s.as_json() for n, s in scenes.items()}, indent=1))
    assert set(scenes) == DATA_SCENES
    for name, scene in scenes.items():
        assert not scene.not_run, name
        assert scene.count is not None, name
        assert scene.count.frames >= 25, name
        assert scene.count.finite, (name, scene.count)
        assert scene.count.mae is not None
        assert scene.count.mape is not None
        assert scene.count.spread_predicted is not None
        assert scene.count.spread_truth is not None
        assert len(scene.zones) >= 3, name  # several zones per scene
        for zone, m in scene.zones.items():
            assert m.finite, (name, zone)
            assert m.frames > 0, (name, zone)
        tally = scene.tallies["crowding"]
        # derived truths: each scene has crowds to find and thresholds that must stay quiet
        assert tally.tp + tally.fn >= 3, name
        if name in DENSE_SCENES and DENSE_SCENE_MAX_MAPE is not None:
            assert scene.count.mape <= DENSE_SCENE_MAX_MAPE, (name, scene.as_json())
            # steadier than the truth itself changes: no more 7 → 16 swings between frames
            assert scene.count.spread_predicted <= scene.count.spread_truth, scene.as_json()
            assert (tally.precision or 0.0) >= DENSE_SCENE_MIN_PRECISION_RECALL, (name, tally)
            assert (tally.recall or 0.0) >= DENSE_SCENE_MIN_PRECISION_RECALL, (name, tally)
        if REAL_DATA_MIN_PRECISION is not None:
            assert (tally.precision or 0.0) >= REAL_DATA_MIN_PRECISION, (name, tally)
        if REAL_DATA_MIN_RECALL is not None:
            assert (tally.recall or 0.0) >= REAL_DATA_MIN_RECALL, (name, tally)
    negatives = [r for r in real_data.scenarios if not r.scenario.incidents]
    assert len(negatives) >= 3  # one scenario per scene whose thresholds the truth never meets
    for r in real_data.scenarios:
        for m in r.matches:
            if m.outcome == "tp":
                assert m.truth is not None
                assert m.onset_s is not None


@pytest.mark.timeout(900)
def test_running_gathering_density_on_ground_truth(real_data: EvalResult) -> None:
    """The rules measured in metres and in count rises, against truths the ground truth calls
    for (the rule's contract on the annotators' people and tracks, through the scene's
    calibration): each finds real incidents, stays quiet where the truth is, and keeps its
    measured precision and recall."""
    report = Report()
    for r in real_data.scenarios:
        if set(r.scenario.rule_types) & GROUND_TRUTH_RULE_TYPES:
            report.add(r.scenario, r.tallies)
            if not r.scenario.incidents:  # a real negative: the truth never calls for one
                assert all(m.outcome != "fp" for m in r.matches), (r.scenario.name, r.matches)
    figures = report.as_json()
    print(json.dumps({t: {k: v for k, v in f.items() if k not in ("real", "synthetic")}
                      for t, f in figures.items()}, indent=1))  # fmt: skip
    assert set(figures) == GROUND_TRUTH_RULE_TYPES
    for rule_type, (min_precision, min_recall) in GROUND_TRUTH_GATES.items():
        f = figures[rule_type]
        assert f["tp"] >= 1, (rule_type, f)
        assert f["synthetic"]["tp"] + f["synthetic"]["fn"] == 0  # all real footage
        assert (f["precision"] or 0.0) >= min_precision, (rule_type, f)
        assert (f["recall"] or 0.0) >= min_recall, (rule_type, f)
        assert f["onset_late"] == 0, (rule_type, f)


def test_eval_cli_reports_scenes_and_keeps_rule_type_keys(tmp_path: Path) -> None:
    if data_root(SCENARIOS) is None and not in_ci():
        pytest.skip("real footage not here (../shared/data)")
    out = tmp_path / "eval.json"
    r = _run("eval", str(SCENARIOS / "crowding"), "--json", str(out), "-v", timeout=900)
    assert r.returncode == 0, r.stderr
    assert "count the crowding rules saw" in r.stdout
    assert "towncentre" in r.stdout
    assert "MAPE" in r.stdout
    data = json.loads(out.read_text())
    assert set(data) == {"crowding", "_scenes"}
    assert {"tp", "fp", "fn", "precision", "recall", "real", "synthetic"} <= set(data["crowding"])
    assert set(data["_scenes"]) == DATA_SCENES
    town = data["_scenes"]["towncentre"]
    assert {"count", "zones", "incidents", "scenarios", "not_run", "source", "licence"} <= set(town)
    assert {"mae", "mape", "spread_predicted", "spread_truth", "frames"} <= set(town["count"])
    assert "street" in town["zones"]


def test_missing_data_is_not_run_here_and_an_error_in_ci(tmp_path: Path) -> None:
    scenario = SCENARIOS / "crowding" / "tud-campus-walkway-4"
    nowhere = tmp_path / "no-data"
    out = tmp_path / "eval.json"
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    r = subprocess.run(
        [str(GRIDWATCH), "eval", str(scenario), "--data", str(nowhere), "-v", "--json", str(out)],
        capture_output=True, text=True, timeout=300, env={**env, "YOLO_OFFLINE": "1"}, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "not run" in r.stdout
    assert "MASA-OA" in r.stdout
    report = json.loads(out.read_text())
    assert "tud-campus-walkway-4" in report["_scenes"]["tud-campus"]["not_run"]
    ci = subprocess.run(
        [str(GRIDWATCH), "eval", str(scenario), "--data", str(nowhere)],
        capture_output=True, text=True, timeout=300,
        env={**env, "YOLO_OFFLINE": "1", "CI": "true"}, check=False,
    )  # fmt: skip
    assert ci.returncode == 2
    assert "TUD-Campus.mp4" in ci.stderr
    assert "MASA-OA" in ci.stderr
    assert issubclass(DataMissing, ValueError)


INT8_MODEL = REPO.parent / "shared" / "models" / "yolov8n_int8_openvino_model"


@pytest.mark.timeout(900)
def test_dense_scene_count_with_the_coco_int8_model() -> None:
    """The same real scenes through the COCO YOLOv8n INT8 OpenVINO export (docs/models.md), the
    model we recommend where it can be installed: the dense scene within 15 %, and PETS09 with
    no jacket (COCO has no Fall class) within 15 % too (measured 9.2 % and 10.9 %)."""
    if not INT8_MODEL.is_dir():
        message = (
            f"{INT8_MODEL} is missing: a public COCO YOLOv8n INT8 OpenVINO export, see "
            "../shared/models/README.md and docs/models.md"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    result = evaluate(
        SCENARIOS, only=lambda s: s.data is not None, backend="openvino", model=str(INT8_MODEL)
    )
    scenes = result.scenes
    assert set(scenes) == DATA_SCENES
    for name in ("towncentre", "pets09-s2l1"):
        count = scenes[name].count
        assert count is not None
        assert count.mape is not None
        assert count.mape <= 15.0, (name, scenes[name].as_json())
    assert (scenes["pets09-s2l1"].tallies["crowding"].precision or 0.0) >= 0.9
