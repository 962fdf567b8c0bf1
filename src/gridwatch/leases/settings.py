"""The ``leases:`` config section: sharing cameras across many workers (see ``docs/scaling.md``).

Kept out of :mod:`gridwatch.config` (which includes it) so that this package needs nothing from
the deployment model, and the simulator can build settings without a config file.
"""

from __future__ import annotations

import os

from pydantic import Field, model_validator

from gridwatch.config.strict import Strict as _Strict

CAMERAS_PER_CORE = 24
"""Default capacity per CPU core: docs/performance.md measured 48-56 cameras at 2 analysed
frames/s on 2 vCPUs (OpenVINO, motion gate, regions)."""


class LeaseConfig(_Strict):
    """Camera leases in NATS KV (``gw_leases``, ``gw_workers``): at most one worker runs a
    camera; cameras spread by capacity and move when a worker dies."""

    enabled: bool = Field(
        default=False,
        title="Share cameras by leases",
        description="Run only the cameras this worker holds a lease on (claimed in the gw_leases "
        "KV bucket), instead of every camera of the config or registry.",
    )
    worker_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        title="Worker id",
        description="Name of this worker in gw_workers; none: host name, process id and a random "
        "suffix (unique per start). $GW_WORKER_ID overrides it.",
    )
    capacity: int | None = Field(
        default=None,
        ge=0,
        le=100000,
        title="Capacity",
        description="Cameras this worker can analyse at their analysis_fps; none: "
        f"{CAMERAS_PER_CORE} per CPU core (docs/performance.md). Cameras are shared in "
        "proportion to capacity.",
    )
    ttl_s: float = Field(
        default=6.0,
        ge=1.0,
        le=600.0,
        title="Lease time",
        description="Seconds a worker's leases outlive its last renewal: others take its cameras "
        "this long after it stops renewing (the failover time is about this plus a second).",
    )
    renew_s: float = Field(
        default=2.0,
        gt=0,
        le=120.0,
        title="Renew interval",
        description="Seconds between renewals of the worker's session (one KV write).",
    )
    margin_s: float = Field(
        default=1.0,
        ge=0.1,
        title="Safety margin",
        description="A worker that could not renew stops its cameras this many seconds before "
        "its lease can expire (covers stopping time and scheduling delays).",
    )
    tick_s: float = Field(
        default=0.25,
        gt=0,
        le=10.0,
        title="Reconcile interval",
        description="Seconds between checks for dead workers, free cameras and imbalance.",
    )
    settle_s: float = Field(
        default=2.5,
        ge=0,
        title="Join wait",
        description="Seconds a new worker watches before claiming, so it sees the other workers "
        "first and claims only its fair share.",
    )
    claim_batch: int = Field(
        default=16,
        ge=1,
        le=1000,
        title="Claims per round",
        description="Cameras claimed at most per reconcile round.",
    )
    release_batch: int = Field(
        default=4,
        ge=1,
        le=1000,
        title="Releases per rebalance",
        description="Surplus cameras an over-target worker hands back per rebalance interval.",
    )
    rebalance_s: float = Field(
        default=1.0,
        gt=0,
        title="Rebalance interval",
        description="Seconds between hand-backs of surplus cameras to workers with room.",
    )
    journal: str | None = Field(
        default=None,
        title="Ownership journal",
        description="Append one JSON line per camera start and stop (worker, camera, "
        "CLOCK_MONOTONIC and wall time) to this file: an audit of who ran what, when.",
    )

    @model_validator(mode="after")
    def _renew_inside_ttl(self) -> LeaseConfig:
        if 2 * self.renew_s + self.margin_s >= self.ttl_s:
            raise ValueError(
                f"ttl_s ({self.ttl_s:g}) must exceed two renewals plus the margin "
                f"(2 x {self.renew_s:g} + {self.margin_s:g}): a worker must get two chances to "
                "renew before it has to stop its cameras"
            )
        return self

    def resolved_capacity(self) -> int:
        """``capacity``, or the default per CPU core of this machine."""
        if self.capacity is not None:
            return self.capacity
        return CAMERAS_PER_CORE * (os.cpu_count() or 1)
