"""What one lease manager did, counted: sessions, renewals, claims, fences, KV traffic.

Kept apart from the manager so the scale simulator (``bench/scale_sim.py``) can sum the
counters of hundreds of managers field by field without reaching into the protocol's code.

>>> s = LeaseStats()
>>> s.claims += 1
>>> s.claims, s.fences
(1, 0)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LeaseStats:
    """Counters of one manager (the simulator sums them for traffic figures)."""

    sessions: int = 0
    renewals: int = 0
    renew_failures: int = 0
    lapses: int = 0
    """Times the local deadline came before a renewal: every camera stopped, lease kept."""
    lost_sessions: int = 0
    """Times the session was found fenced or replaced."""
    claims: int = 0
    claim_conflicts: int = 0
    claims_refused_alive: int = 0
    releases: int = 0
    fences: int = 0
    fence_conflicts: int = 0
    writes: int = 0
    write_bytes: int = 0
    reads: int = 0
    fenced_alerts: int = 0
    """Alerts not sent because the camera's lease was no longer certainly ours."""
    longest_renew_gap_s: float = 0.0
    """Longest time between two acknowledged renewals (sent times) of a session."""
