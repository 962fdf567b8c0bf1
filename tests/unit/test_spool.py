"""The alert spool on disk: order, bounds (snapshots dropped first), crash debris, locking."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gridwatch.alerts.spool import AlertSpool, SpoolFullError
from tests.plugins.dispatch import make_alert


def test_fifo_survives_a_restart(tmp_path: Path) -> None:
    spool = AlertSpool(tmp_path)
    alerts = [make_alert("g", "cam", i) for i in range(3)]
    for i, a in enumerate(alerts):
        spool.append(a, b"\xff\xd8\xff jpeg" if i == 1 else None)
    spool.close()
    (tmp_path / "000000000099.jpg").write_bytes(b"debris")  # crash between picture and entry
    again = AlertSpool(tmp_path)
    assert len(again) == 3
    assert not (tmp_path / "000000000099.jpg").exists()
    got = []
    while (entry := again.peek()) is not None:
        got.append((entry.alert.message_id, entry.jpeg is not None))
        again.remove(entry)
    assert got == [(a.message_id, i == 1) for i, a in enumerate(alerts)]
    again.append(alerts[0], None)
    entry = again.peek()
    assert entry is not None
    assert entry.seq == 4  # numbering goes on, never reuses


def test_bounds_drop_snapshots_then_alerts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = AlertSpool(tmp_path, max_items=2, max_bytes=4500)
    caplog.set_level(logging.ERROR)
    spool.append(make_alert("g", "cam", 1), b"\xff\xd8" + b"x" * 3000)
    spool.append(make_alert("g", "cam", 2), b"\xff\xd8" + b"x" * 3000)  # no room: alert only
    assert spool.stats.dropped_snapshots == 1
    with pytest.raises(SpoolFullError):
        spool.append(make_alert("g", "cam", 3), None)
    assert spool.stats.dropped_alerts == 1
    assert "ALERT LOST" in caplog.text
    assert len(spool) == 2


def test_one_worker_per_directory(tmp_path: Path) -> None:
    first = AlertSpool(tmp_path / "s")
    with pytest.raises(RuntimeError, match="in use"):
        AlertSpool(tmp_path / "s")
    first.close()
    AlertSpool(tmp_path / "s").close()
