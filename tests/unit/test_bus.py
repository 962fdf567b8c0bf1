"""The bus layer's wire contracts: names, typed messages and infra specs stay byte-compatible."""

from __future__ import annotations

import json

from gridwatch.alerts import subjects as alert_subjects
from gridwatch.auth import subjects as auth_subjects
from gridwatch.bus import infra, names
from gridwatch.bus.messages import CameraHealth, CaseReply, SnapshotMeta


def test_old_name_modules_re_export_the_same_objects() -> None:
    assert alert_subjects.ALERTS_STREAM is names.ALERTS_STREAM == "GW_ALERTS"
    assert auth_subjects.CASES_KV is names.CASES_KV == "gw_cases"
    assert auth_subjects.AUDIT_STREAM == "GW_AUDIT"
    assert names.kv_stream(names.LEASES_KV) == "KV_gw_leases"


def test_case_reply_bytes_are_what_the_service_always_sent() -> None:
    body = CaseReply(ok=True, case={"id": "a"}, unchanged=True).to_json()
    assert body == json.dumps({"ok": True, "case": {"id": "a"}, "unchanged": True}).encode()
    err = CaseReply(ok=False, code="forbidden", error="no").to_json()
    assert json.loads(err) == {"ok": False, "code": "forbidden", "error": "no"}
    assert CaseReply.from_json(err).code == "forbidden"


def test_camera_health_keeps_its_keys_and_reads_tolerantly() -> None:
    report = {"camera_id": "c1", "state": "online", "ts": 1.0, "online": True, "future": 1}
    h = CameraHealth.model_validate(report)
    assert h.to_dict() == {**CameraHealth(camera_id="c1").to_dict(), **report}
    assert "schema_version" not in h.to_dict()
    bad = CameraHealth.from_dict({"camera_id": "c1", "count": "x", "tamper": [1, "covered"]})
    assert bad is not None
    assert bad.count is None
    assert bad.tamper == ["covered"]
    assert CameraHealth.from_json(b"not json") is None


def test_snapshot_meta_round_trips_and_fails_closed() -> None:
    meta = SnapshotMeta(grid="g1", boxes=[[0.1, 0.2, 0.3, 0.4]], blur="people", people=[])
    headers = {k: [v] for k, v in meta.to_headers().items()}
    assert headers["Gw-Boxes"] == ["[[0.1,0.2,0.3,0.4]]"]
    back = SnapshotMeta.from_headers(headers)
    assert back == meta
    assert back.blur_plan() == (False, [[0.1, 0.2, 0.3, 0.4]], [])
    assert SnapshotMeta.from_headers({"Gw-Blur": ["people"]}).blur_plan()[0] is True
    assert SnapshotMeta.from_headers(None).grid is None


def test_infra_specs_keep_the_special_rules() -> None:
    audit = infra.audit_stream(retention_days=10)
    cfg = audit.config()
    assert cfg.deny_delete
    assert cfg.deny_purge
    assert cfg.allow_rollup_hdrs is False
    assert set(audit.owned()) == {"deny_delete", "deny_purge", "allow_rollup_hdrs"}
    assert infra.workers_kv().ttl_s == infra.WORKERS_MAX_AGE_S
    assert infra.camera_registry_kv(history=16).history == 16
    assert infra.cases_kv(retention_days=1).converge_ttl
    assert infra.alerts_stream().config().duplicate_window == infra.DEFAULT_DUPLICATE_WINDOW_S
