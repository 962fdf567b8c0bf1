"""GB/T 28181 ids: 20 digits, and the plan that gives our grids stable ids.

An id is ``CCCCCCCCII TTT NSSSSSS``: a 10-digit centre code (8 digits of administrative area
from the superior's administrator plus 2 of industry), a 3-digit type code (digits 11-13),
a network digit and a 6-digit serial. The superior platform checks the type code, so a camera
id with type 200 is refused, and a business group must be 215: validating here turns that into
a config error instead of a channel the platform silently drops.

>>> validate_gb_id("34020000002000000001", {200})
'34020000002000000001'
>>> type_code("34020000001320000001")
132
>>> derive_id("3402000000", 131, 7)
'34020000001310000007'
>>> grid_group_id("34020000002000000001", "north") == grid_group_id("34020000002000000001", "north")
True
>>> type_code(grid_org_id("34020000002000000001", "north"))
216
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

_ID_RE = re.compile(r"^\d{20}$")

PLATFORM = 200
"""Type code of a platform (central signalling server): our own ``device_id``."""
CAMERA = 131
"""Type code of a camera."""
CHANNEL = 132
"""Type code of a video channel (what a platform's catalog lists per camera)."""
BUSINESS_GROUP = 215
"""Type code of a business group (业务分组): one per grid."""
VIRTUAL_ORG = 216
"""Type code of a virtual organisation (虚拟组织): one per grid, inside its business group."""

TYPE_NAMES = {
    PLATFORM: "platform",
    CAMERA: "camera",
    CHANNEL: "channel",
    BUSINESS_GROUP: "business group",
    VIRTUAL_ORG: "virtual organisation",
}


def type_code(gb_id: str) -> int:
    """The type code of an id (digits 11-13).

    >>> type_code("34020000002150000001")
    215
    """
    if not _ID_RE.match(gb_id):
        raise ValueError(f"{gb_id!r} is not a GB/T 28181 id (20 digits)")
    return int(gb_id[10:13])


def validate_gb_id(value: str, types: set[int]) -> str:
    """Return ``value`` if it is 20 digits with one of ``types`` as type code; else ValueError.

    >>> validate_gb_id("3402000000132000001", {132})
    Traceback (most recent call last):
    ...
    ValueError: '3402000000132000001' is not a GB/T 28181 id: it must be exactly 20 digits ...
    >>> validate_gb_id("34020000002000000001", {131, 132})
    Traceback (most recent call last):
    ...
    ValueError: '34020000002000000001' has type code 200 (platform) in digits 11-13; expected ...
    """
    if not isinstance(value, str) or not _ID_RE.match(value):
        got = f"{len(value)} characters" if isinstance(value, str) else type(value).__name__
        raise ValueError(
            f"{value!r} is not a GB/T 28181 id: it must be exactly 20 digits (got {got})"
        )
    code = int(value[10:13])
    if code not in types:
        expected = " or ".join(f"{t} ({TYPE_NAMES.get(t, 'type')})" for t in sorted(types))
        name = TYPE_NAMES.get(code)
        got = f"{code} ({name})" if name else str(code)
        raise ValueError(f"{value!r} has type code {got} in digits 11-13; expected {expected}")
    return value


def derive_id(centre: str, type_code: int, serial: int) -> str:
    """Build an id from a 10-digit centre code, a type code and a serial (0..9 999 999).

    The serial's first digit is the network digit of GB/T 28181 (0-4: video surveillance
    private network); the superior's administrator says which one to use.

    >>> derive_id("3402000000", 132, 12)
    '34020000001320000012'
    """
    if not re.fullmatch(r"\d{10}", centre):
        raise ValueError(f"centre code {centre!r} must be exactly 10 digits")
    if not 0 <= type_code <= 999:
        raise ValueError(f"type code {type_code} must be 0..999")
    if not 0 <= serial <= 9_999_999:
        raise ValueError(f"serial {serial} must be 0..9999999 (7 digits)")
    return f"{centre}{type_code:03d}{serial:07d}"


def _grid_serial(device_id: str, grid: str, salt: str) -> int:
    """Network digit of ``device_id`` + 6 digits from a hash of the grid id: the same grid gets
    the same id after every restart, whatever order grids are listed in."""
    validate_gb_id(device_id, {PLATFORM})
    digest = hashlib.sha256(f"{salt}|{grid}".encode()).digest()
    return int(device_id[13]) * 1_000_000 + int.from_bytes(digest[:8], "big") % 1_000_000


def grid_group_id(device_id: str, grid: str) -> str:
    """The business group (215) id of a grid, derived from our platform id.

    >>> grid_group_id("34020000002000000001", "north")[:13]
    '3402000000215'
    """
    return derive_id(device_id[:10], BUSINESS_GROUP, _grid_serial(device_id, grid, "group"))


def grid_org_id(device_id: str, grid: str) -> str:
    """The virtual organisation (216) id of a grid, derived from our platform id.

    >>> grid_org_id("34020000002000000001", "north")[:13]
    '3402000000216'
    """
    return derive_id(device_id[:10], VIRTUAL_ORG, _grid_serial(device_id, grid, "org"))


def camera_channel_id(device_id: str, camera: str) -> str:
    """A derived channel (132) id for a camera without a configured ``gb28181_id``.

    Used only when ``gb28181.derive_camera_ids`` is on; a superior usually assigns ids itself,
    which is why the default is to require one per camera.

    >>> camera_channel_id("34020000002000000001", "gate-1")[10:13]
    '132'
    """
    return derive_id(device_id[:10], CHANNEL, _grid_serial(device_id, camera, "camera"))


def id_plan_collisions(ids: Iterable[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """``(owner, id)`` pairs → ``(id, first owner, second owner)`` for each id used twice.

    A hash can collide (6 digits per network); the config check reports it so the operator
    renames a grid instead of two grids sharing one node on the superior.

    >>> id_plan_collisions([("a", "1"), ("b", "2"), ("c", "1")])
    [('1', 'a', 'c')]
    """
    seen: dict[str, str] = {}
    out: list[tuple[str, str, str]] = []
    for owner, gb_id in ids:
        if gb_id in seen:
            out.append((gb_id, seen[gb_id], owner))
        else:
            seen[gb_id] = owner
    return out
