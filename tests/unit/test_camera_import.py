"""Camera files: every bad row of a 500-row CSV is reported with its line; YAML keeps lines too;
exports read back, and a redacted password is taken from the registered camera."""

from __future__ import annotations

import csv
import io

import pytest

from gridwatch.config import CameraConfig, parse_config
from gridwatch.registry.files import (
    dump_cameras_csv,
    dump_cameras_yaml,
    read_cameras_csv,
    read_cameras_file,
    read_cameras_yaml,
    restore_credentials,
    validate_cameras,
)

CONFIG = parse_config("grids: [{id: g1}, {id: g2}]\n", "deploy.yaml")


def big_csv(bad: dict[int, tuple[int, str]]) -> str:
    """500 cameras; ``bad`` maps a data row index to (column index, bad value)."""
    rows = [["id", "name", "grid", "url", "lat", "lon", "analysis_fps"]]
    for i in range(500):
        rows.append(
            [
                f"cam-{i:03d}",
                f"Cam {i}",
                "g1",
                f"rtsp://u:pw@10.1.{i // 250}.{i % 250 + 1}/s",
                "40.6",
                "109.8",
                "2",
            ]
        )
    for row, (col, value) in bad.items():
        rows[row][col] = value
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def test_500_rows_with_a_few_bad_ones_report_each_with_its_line() -> None:
    # data row n is on line n + 1 (the header is line 1)
    text = big_csv(
        {
            17: (2, "nowhere"),
            101: (3, "http://10.0.0.1/x"),
            250: (6, "fast"),
            333: (4, "91"),
            400: (0, "cam-010"),
            499: (3, ""),
        }
    )
    checked = validate_cameras(read_cameras_csv(text, "cams.csv"), CONFIG)
    assert checked.rows == 500
    assert checked.bad_lines == [18, 102, 251, 334, 401, 500]
    assert len(checked.cameras) == 494
    got = {i.line: str(i) for i in checked.issues}
    assert got[18] == "cams.csv:18:16: grid: unknown grid 'nowhere' (known: g1, g2)"
    assert got[102].startswith("cams.csv:102:")
    assert "url must be rtsp://" in got[102]
    assert "analysis_fps" in got[251]
    assert "valid number" in got[251]
    assert "lat: Input should be less than or equal to 90" in got[334]
    assert "duplicate camera id 'cam-010' (first on line 12)" in got[401]
    assert "url: required field is missing" in got[500]


def test_csv_header_problems() -> None:
    parsed = read_cameras_csv("id,grid,url,colour\n", "x.csv")
    assert [str(i) for i in parsed.issues] == [
        "x.csv:1:13: colour: unknown column 'colour' (known: id, name, grid, url, sub_url, "
        "lat, lon, analysis_fps, enabled, loop; zones, rules and privacy masks go in YAML)"
    ]
    parsed = read_cameras_csv("id,name\n", "x.csv")
    assert "missing column(s): grid, url" in str(parsed.issues[0])


def test_csv_cells_and_quoting() -> None:
    text = 'id,name,grid,url,enabled\n"cam-1","Gate, south",g1,rtsp://h/s,no\n\ncam-2,,g2,rtsp://h/t,\n'
    checked = validate_cameras(read_cameras_csv(text, "x.csv"), CONFIG)
    assert not checked.issues
    (l1, c1), (l2, c2) = checked.cameras
    assert (l1, c1.name, c1.enabled) == (2, "Gate, south", False)
    assert (l2, c2.name, c2.enabled) == (4, "", True)


def test_yaml_cameras_keep_their_lines() -> None:
    text = """cameras:
  - {id: a, grid: g1, url: rtsp://h/a}
  - id: b
    grid: g9
    url: rtsp://h/b
    zones: [{id: z, polygon: [[0, 0], [1, 1], [1, 0], [0, 1]]}]
"""
    checked = validate_cameras(read_cameras_yaml(text, "c.yaml"), CONFIG)
    assert [c.id for _, c in checked.cameras] == ["a"]
    got = [str(i) for i in checked.issues]
    assert "c.yaml:4:5: cameras[1].grid: unknown grid 'g9' (known: g1, g2)" in got
    assert any(g.startswith("c.yaml:6:") and "crosses itself" in g for g in got), got


def test_a_whole_config_file_validates_against_its_own_grids() -> None:
    text = "grids: [{id: own}]\ncameras:\n  - {id: a, grid: own, url: rtsp://h/a}\n"
    parsed = read_cameras_file(text, "deploy.yaml")
    assert parsed.own_config is not None
    checked = validate_cameras(parsed, parsed.own_config)
    assert not checked.issues
    assert checked.cameras[0][1].grid == "own"


@pytest.mark.parametrize("fmt", ["yaml", "csv"])
def test_export_reads_back(fmt: str) -> None:
    cams = [
        CameraConfig.model_validate(
            {
                "id": "a",
                "grid": "g1",
                "url": "rtsp://admin:pw@h/a",
                "name": "南门",
                "zones": [{"id": "z", "polygon": [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]}],
                "rules": [{"type": "crowding", "zone": "z", "min_count": 4}],
                "privacy_masks": [{"id": "w", "polygon": [[0, 0], [0.2, 0], [0.2, 0.2]]}],
            }
        ),
        CameraConfig.model_validate({"id": "b", "grid": "g2", "url": "rtsp://h/b", "lat": 40.5}),
    ]
    dump = dump_cameras_yaml if fmt == "yaml" else dump_cameras_csv
    text = dump(cams, include_credentials=True)
    assert "pw@" in text
    back = validate_cameras(read_cameras_file(text, f"x.{fmt}"), CONFIG)
    assert not back.issues
    if fmt == "yaml":
        assert [c for _, c in back.cameras] == cams
        assert "polygon: [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]" in text  # readable in git
    else:
        assert [c.url for _, c in back.cameras] == [c.url for c in cams]
    redacted = dump(cams)
    assert "pw@" not in redacted
    assert "admin:***@h" in redacted


def test_a_redacted_password_comes_from_the_registered_camera() -> None:
    registered = CameraConfig(id="a", grid="g1", url="rtsp://admin:pw@h/a")
    imported = CameraConfig(id="a", grid="g1", url="rtsp://admin:***@h/a", name="new name")
    assert restore_credentials(imported, registered).url == "rtsp://admin:pw@h/a"
    with pytest.raises(ValueError, match="put the real password"):
        restore_credentials(imported, None)
    moved = imported.model_copy(update={"url": "rtsp://admin:***@other/a"})
    with pytest.raises(ValueError, match="put the real password"):
        restore_credentials(moved, registered)
