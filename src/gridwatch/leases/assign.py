"""Pure assignment arithmetic: how many cameras each worker should hold, and who fences whom.

No I/O here, so the rules are tested exhaustively without a server (tests/unit/test_leases.py).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping


def fair_targets(capacities: Mapping[str, int], cameras: int) -> dict[str, int]:
    """Cameras each worker should hold: a share proportional to its capacity, rounded up,
    never above its capacity.

    Rounding up makes the targets add up to at least ``cameras`` (when capacity allows), so in a
    balanced state every worker is at or under its target and nobody has a reason to move a
    camera: that is what keeps a healthy owner's cameras where they are.

    >>> fair_targets({"a": 48, "b": 48, "c": 24}, 30)
    {'a': 12, 'b': 12, 'c': 6}
    >>> fair_targets({"a": 10, "b": 10}, 50)  # not enough capacity: everyone full
    {'a': 10, 'b': 10}
    """
    total = sum(max(0, c) for c in capacities.values())
    if total <= 0 or cameras <= 0:
        return {w: 0 for w in capacities}
    return {
        w: min(max(0, cap), math.ceil(cameras * max(0, cap) / total))
        for w, cap in capacities.items()
    }


def fair_floors(capacities: Mapping[str, int], cameras: int) -> dict[str, int]:
    """The rounded-down share: a worker below it is *short* and is owed cameras.

    Targets round up so a balanced state needs no moves; the slack that leaves (up to one
    camera per worker) must not all land on one newcomer, so a worker above its floor hands a
    camera to a short one, and workers at their floor stop claiming while someone is short.

    >>> fair_floors({"a": 300, "b": 300, "c": 300}, 700)  # targets would be 234 each
    {'a': 233, 'b': 233, 'c': 233}
    >>> fair_floors({"a": 48, "b": 48, "c": 48}, 700)  # never above a worker's capacity
    {'a': 48, 'b': 48, 'c': 48}
    """
    total = sum(max(0, c) for c in capacities.values())
    if total <= 0 or cameras <= 0:
        return {w: 0 for w in capacities}
    return {
        w: min(max(0, cap), math.floor(cameras * max(0, cap) / total))
        for w, cap in capacities.items()
    }


def rendezvous(key: str, candidates: Iterable[str]) -> list[str]:
    """``candidates`` ordered by highest-random-weight for ``key`` (rendezvous hashing).

    Every worker computes the same order from the same membership, so exactly one of them is
    first (the designated fencer of a dead worker) without any coordination.

    >>> rendezvous("w9", ["a", "b", "c"]) == rendezvous("w9", ["c", "b", "a"])
    True
    """
    return sorted(candidates, key=lambda c: (zlib.crc32(f"{key}/{c}".encode()), c), reverse=True)


def spread(counts: Mapping[str, int]) -> float:
    """max/mean cameras per worker (1.0 is perfectly even; 0 workers or cameras: 0.0).

    >>> round(spread({"a": 24, "b": 23, "c": 23}), 4)
    1.0286
    """
    if not counts:
        return 0.0
    mean = sum(counts.values()) / len(counts)
    return max(counts.values()) / mean if mean > 0 else 0.0
