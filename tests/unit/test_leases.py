"""Pure parts of the lease protocol: fair targets, records, settings, journals and the view's
bookkeeping (fed KV entries directly, with a clock the test moves)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nats.js.kv import KeyValue
from pydantic import ValidationError

from gridwatch.config import parse_config
from gridwatch.leases.assign import fair_targets, rendezvous, spread
from gridwatch.leases.journal import OwnershipJournal, overlaps, read_intervals
from gridwatch.leases.records import (
    LEASES_BUCKET,
    WORKERS_BUCKET,
    LeaseRecord,
    WorkerRecord,
    default_worker_id,
)
from gridwatch.leases.settings import LeaseConfig
from gridwatch.leases.view import ClusterView


@pytest.mark.parametrize(
    ("caps", "cameras", "want"),
    [
        ({"a": 40, "b": 40, "c": 40}, 30, {"a": 10, "b": 10, "c": 10}),
        ({"a": 40, "b": 40, "c": 40, "d": 40}, 30, {"a": 8, "b": 8, "c": 8, "d": 8}),
        ({"a": 48, "b": 24}, 30, {"a": 20, "b": 10}),
        ({"a": 10, "b": 10}, 50, {"a": 10, "b": 10}),  # not enough capacity: all full
        ({"a": 0, "b": 10}, 5, {"a": 0, "b": 5}),
        ({"a": 10}, 0, {"a": 0}),
        ({}, 10, {}),
    ],
)
def test_fair_targets(caps: dict[str, int], cameras: int, want: dict[str, int]) -> None:
    assert fair_targets(caps, cameras) == want


@pytest.mark.parametrize("workers", [1, 2, 3, 7, 300])
@pytest.mark.parametrize("cameras", [1, 30, 1000, 7000])
def test_targets_cover_every_camera_and_stay_within_one(workers: int, cameras: int) -> None:
    """Rounded up, the targets always leave room for every camera (no worker has to be over
    its target in a full assignment), and differ from the exact share by less than one."""
    caps = {f"w{i}": 48 for i in range(workers)}
    targets = fair_targets(caps, cameras)
    assert sum(targets.values()) >= min(cameras, 48 * workers)
    assert all(t - cameras / workers < 1 for t in targets.values() if t < 48)


def test_rendezvous_is_a_shared_order() -> None:
    members = [f"w{i}" for i in range(50)]
    first = {rendezvous(f"dead-{k}", members)[0] for k in range(200)}
    assert len(first) > 30  # fencing duty spreads over workers
    assert rendezvous("x", members) == rendezvous("x", list(reversed(members)))


def test_spread() -> None:
    assert spread({}) == 0.0
    assert spread({"a": 10, "b": 10}) == 1.0
    assert spread({"a": 15, "b": 5}) == 1.5


def test_records_round_trip_and_refuse_garbage() -> None:
    lease = LeaseRecord("w1", "s1")
    assert LeaseRecord.decode(lease.encode()) == lease
    worker = WorkerRecord("w1", "s1", 48, ready=True, cameras=("a", "b"), held=2, cpu_percent=3.5)
    assert WorkerRecord.decode(worker.encode()) == worker
    for raw in (b"", b"[]", b'{"v": 2, "worker": "w"}', b'{"v": 1}', b"\xff"):
        with pytest.raises(ValueError):  # noqa: PT011
            LeaseRecord.decode(raw)
    with pytest.raises(ValueError, match="malformed"):
        WorkerRecord.decode(b'{"v": 1, "worker": "w", "session": "s", "capacity": "many"}')


def test_default_worker_id_is_a_valid_unique_key() -> None:
    a, b = default_worker_id(), default_worker_id()
    assert a != b
    LeaseConfig(worker_id=a)  # passes the id pattern


def test_settings_need_two_renewals_inside_the_ttl() -> None:
    LeaseConfig(ttl_s=6, renew_s=2, margin_s=1)
    with pytest.raises(ValidationError, match="two chances to renew"):
        LeaseConfig(ttl_s=5, renew_s=2, margin_s=1)
    assert LeaseConfig(capacity=7).resolved_capacity() == 7
    assert LeaseConfig().resolved_capacity() >= 24


def test_leases_section_in_a_config_file() -> None:
    cfg = parse_config(
        "nats: {url: 'nats://a:4222,nats://b:4222', replicas: 3}\n"
        "leases: {enabled: true, capacity: 40, ttl_s: 8, renew_s: 2}\n",
        "x.yaml",
    )
    assert cfg.leases.enabled
    assert cfg.leases.capacity == 40
    assert cfg.nats.replicas == 3
    with pytest.raises(ValueError, match=r"leases\.nope"):
        parse_config("leases: {nope: 1}\n", "x.yaml")


def test_journal_intervals_and_overlaps(tmp_path: Path) -> None:
    j1, j2 = tmp_path / "a.journal", tmp_path / "b.journal"
    lines = {
        j1: [("w1", "c1", "start", 1.0), ("w1", "c1", "stop", 5.0), ("w1", "c2", "start", 1.0)],
        j2: [("w2", "c1", "start", 5.5), ("w2", "c2", "start", 9.0)],
    }
    for path, events in lines.items():
        path.write_text(
            "".join(
                json.dumps({"worker": w, "camera": c, "event": e, "mono": t, "wall": 0}) + "\n"
                for w, c, e, t in events
            )
        )
    # w1 was killed at 8.0: c2 ran on it until then, then on w2 from 9.0: no overlap
    iv = read_intervals([j1, j2], open_until={"w1": 8.0})
    assert sorted(iv["c1"]) == [("w1", 1.0, 5.0), ("w2", 5.5, float("inf"))]
    assert not overlaps(iv)
    # had w1 lived on, c2 would have run twice
    found = overlaps(read_intervals([j1, j2]))
    assert [(c, a[0], b[0]) for c, a, b in found] == [("c2", "w1", "w2")]


def test_journal_writes_start_before_and_stop_after(tmp_path: Path) -> None:
    j = OwnershipJournal(tmp_path / "x" / "w.journal", "w9")
    j.record("start", ["b", "a"])
    j.record("stop", [])
    j.record("stop", ["a"])
    j.close()
    j.record("start", ["late"])  # after close: ignored
    docs = [json.loads(x) for x in (tmp_path / "x" / "w.journal").read_text().splitlines()]
    assert [(d["camera"], d["event"]) for d in docs] == [("a", "start"), ("b", "start"),
                                                         ("a", "stop")]  # fmt: skip
    assert docs[0]["mono"] <= docs[2]["mono"]


# -- the view's bookkeeping -----------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def entry(bucket: str, key: str, value: bytes | None, rev: int) -> KeyValue.Entry:
    return KeyValue.Entry(
        bucket=bucket,
        key=key,
        value=value,
        revision=rev,
        delta=None,
        created=None,
        operation="DEL" if value is None else None,
    )


def worker_entry(name: str, session: str, rev: int, cap: int = 10) -> KeyValue.Entry:
    rec = WorkerRecord(name, session, cap, ready=True, ttl_s=6.0)
    return entry(WORKERS_BUCKET, name, rec.encode(), rev)


def lease_entry(camera: str, worker: str, session: str, rev: int) -> KeyValue.Entry:
    return entry(LEASES_BUCKET, camera, LeaseRecord(worker, session).encode(), rev)


@pytest.fixture
def view() -> tuple[ClusterView, Clock]:
    clock = Clock()
    v = ClusterView(None, None, None, ttl_s=6.0, clock=clock)  # type: ignore[arg-type]
    v.set_candidates(["c1", "c2", "c3"])
    return v, clock


def test_view_free_cameras_follow_sessions(view: tuple[ClusterView, Clock]) -> None:
    v, _ = view
    assert v.free == {"c1", "c2", "c3"}  # nobody holds anything yet
    v.note_entry(WORKERS_BUCKET, worker_entry("w1", "s1", 1))
    v.note_entry(LEASES_BUCKET, lease_entry("c1", "w1", "s1", 2))
    v.note_entry(LEASES_BUCKET, lease_entry("c2", "w1", "s1", 3))
    assert v.free == {"c3"}
    assert v.held_by("s1") == {"c1", "c2"}
    # w1 restarts with a new session: the old one has ended, its cameras are free
    v.note_entry(WORKERS_BUCKET, worker_entry("w1", "s2", 4))
    assert v.free == {"c1", "c2", "c3"}
    # a claim by the new session takes c1 out again
    v.note_entry(LEASES_BUCKET, lease_entry("c1", "w1", "s2", 5))
    assert v.free == {"c2", "c3"}
    # the worker's key deleted (fenced or shut down): everything it held is free
    v.note_entry(WORKERS_BUCKET, entry(WORKERS_BUCKET, "w1", None, 6))
    assert v.free == {"c1", "c2", "c3"}
    assert v.lease_revs == {"c1": 5, "c2": 3}


def test_view_expiry_is_measured_on_the_local_clock(view: tuple[ClusterView, Clock]) -> None:
    v, clock = view
    v.note_entry(WORKERS_BUCKET, worker_entry("w1", "s1", 1))
    v.note_entry(WORKERS_BUCKET, worker_entry("w2", "s2", 2))
    clock.t += 5.9
    v.note_entry(WORKERS_BUCKET, worker_entry("w2", "s2", 3))  # w2 renews, w1 is silent
    assert v.expired() == []
    clock.t += 0.2
    assert v.expired() == ["w1"]
    assert v.expired_for("w1") == pytest.approx(0.1)
    assert set(v.live_workers()) == {"w2"}
    # the same revision seen again (a fresh watch's snapshot) does not restart its clock
    v.note_snapshot(WORKERS_BUCKET, {"w1": worker_entry("w1", "s1", 1),
                                      "w2": worker_entry("w2", "s2", 3)})  # fmt: skip
    assert v.expired() == ["w1"]
    # an expired worker's cameras are *not* free: it must be fenced first
    v.note_entry(LEASES_BUCKET, lease_entry("c1", "w1", "s1", 4))
    assert "c1" not in v.free


def test_view_unknown_session_frees_a_camera_only_after_a_ttl(
    view: tuple[ClusterView, Clock],
) -> None:
    """A lease can arrive before its worker's key does (two streams, no common order): it
    must not look free; only a session still unknown after a TTL is treated as ended."""
    v, clock = view
    v.note_entry(LEASES_BUCKET, lease_entry("c1", "w9", "s9", 1))
    assert "c1" not in v.free
    clock.t += 5.0
    v.note_entry(WORKERS_BUCKET, worker_entry("w9", "s9", 2))
    clock.t += 5.0
    v._refresh("c1")
    assert "c1" not in v.free
    v.note_entry(LEASES_BUCKET, lease_entry("c2", "w8", "s8", 3))
    clock.t += 6.0
    v._refresh("c2")
    assert "c2" in v.free


def test_view_targets_and_room(view: tuple[ClusterView, Clock]) -> None:
    v, _ = view
    v.note_entry(WORKERS_BUCKET, worker_entry("w1", "s1", 1, cap=10))
    v.note_entry(WORKERS_BUCKET, worker_entry("w2", "s2", 2, cap=10))
    assert v.targets() == {"w1": 2, "w2": 2}
    for i, c in enumerate(["c1", "c2", "c3"]):
        v.note_entry(LEASES_BUCKET, lease_entry(c, "w1", "s1", 3 + i))
    assert v.has_room(excluding="w1")  # w2 holds 0 of its 2
    assert not v.has_room(excluding="w2")
    assert v.fencer_rank("w2", "w1") == 0  # the only other live worker
