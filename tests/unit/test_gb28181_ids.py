"""GB/T 28181 ids and the grid id plan."""

from __future__ import annotations

import pytest

from gridwatch.gb28181.ids import (
    camera_channel_id,
    derive_id,
    grid_group_id,
    grid_org_id,
    id_plan_collisions,
    type_code,
    validate_gb_id,
)

OURS = "34020000002000000001"


@pytest.mark.parametrize(
    ("value", "types", "fragment"),
    [
        ("3402000000200000001", {200}, "exactly 20 digits"),
        ("340200000020000000011", {200}, "exactly 20 digits"),
        ("3402000000200000000a", {200}, "exactly 20 digits"),
        (" 34020000002000000001", {200}, "exactly 20 digits"),
        ("34020000001320000001", {200}, "type code 132 (channel)"),
        ("34020000002150000001", {131, 132}, "expected 131 (camera) or 132 (channel)"),
    ],
)
def test_bad_ids_say_why(value: str, types: set[int], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        validate_gb_id(value, types)


def test_good_ids_and_type_codes() -> None:
    assert validate_gb_id("34020000001310000001", {131, 132}) == "34020000001310000001"
    assert type_code("34020000002160000001") == 216
    with pytest.raises(ValueError, match="20 digits"):
        type_code("123")


def test_derive_id_layout_and_bounds() -> None:
    assert derive_id("3402000000", 132, 9_999_999) == "34020000001329999999"
    for bad in (("340200000", 132, 1), ("3402000000", 1000, 1), ("3402000000", 132, 10**7)):
        with pytest.raises(ValueError, match="must be"):
            derive_id(*bad)


def test_grid_ids_are_stable_typed_and_distinct() -> None:
    grids = [f"grid-{i}" for i in range(200)]
    groups = [grid_group_id(OURS, g) for g in grids]
    orgs = [grid_org_id(OURS, g) for g in grids]
    assert groups == [grid_group_id(OURS, g) for g in grids]
    assert all(type_code(g) == 215 and g.startswith("3402000000") for g in groups)
    assert all(type_code(o) == 216 and o[13] == OURS[13] for o in orgs)
    assert len(set(groups)) == len(groups)
    assert len(set(orgs)) == len(orgs)
    assert grid_group_id(OURS, "north") != grid_group_id(OURS, "south")
    assert grid_group_id("11010000002000000001", "north").startswith("1101000000215")
    assert type_code(camera_channel_id(OURS, "cam-1")) == 132
    with pytest.raises(ValueError, match="expected 200"):
        grid_group_id("34020000001320000001", "north")  # not a platform id


def test_grid_ids_pinned() -> None:
    """The id plan must not change between releases (the superior stores these ids)."""
    assert grid_group_id(OURS, "north") == PINNED_GROUP
    assert grid_org_id(OURS, "north") == PINNED_ORG


def test_collisions_reported() -> None:
    assert id_plan_collisions([("a", "1"), ("b", "1"), ("c", "1")]) == [
        ("1", "a", "b"),
        ("1", "a", "c"),
    ]
    assert id_plan_collisions([]) == []


PINNED_GROUP = "34020000002150386255"
PINNED_ORG = "34020000002160856365"
