"""Privacy of evidence clips (issue 14, item 2): masked and blurred, never served raw.

Real parts: a nats-server started from the generated configuration (the clip service runs as
the snapshots identity, clips are stored by the worker identity, people log in as themselves),
clips cut from the demo video as the worker cuts them (its H.264 packets remuxed, no
re-encode), the clip service's re-encode (PyAV, libx264, the live view's person detector) and
the worker's detector judging what a viewer can see.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gridwatch.alerts.clip_service import ClipRequestError, request_clip, request_clip_reply
from gridwatch.detectors import build_detector
from gridwatch.detectors.base import Detector
from tests.plugins.clips import (
    MASK,
    YARD_MASK,
    clip_stack,
    demo_clip_mp4,
    frames_of,
    mask_inside,
    matched,
    people,
    people_boxes,
    put_clip,
)
from tests.plugins.dispatch import GRID_A, GRID_B

pytestmark = [pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def detector() -> Detector:
    """The worker's detector: what counts as "a person is visible"."""
    return build_detector("default", 0.25, imgsz=640, threads=2)


async def test_a_responder_gets_the_clip_masked_with_every_person_blurred(
    tmp_path: Path, demo_mp4: Path, detector: Detector
) -> None:
    """Attack: a responder (who only ever gets blurred snapshots) fetches an alert's evidence
    clip, the camera's own video, to see people's faces in clear and what the camera's privacy
    mask hides (a home's windows); asking for the full clip too.

    Must happen: the clip is re-encoded with the mask black on every picture and people
    pixelated: the worker's detector finds none of the people it finds in the raw clip's same
    pictures; asking full gives the blurred clip (as for snapshots), and no audit record (no
    full view happened). No permissions violation for the service's restricted identity."""
    raw = demo_clip_mp4(demo_mp4, 28.0, 6.0)
    async with clip_stack(tmp_path) as stack:
        name = await put_clip(stack.store, "gate", "a1", raw, masks=[MASK])
        li = await stack.users.connect("aux-li")
        reply = await request_clip_reply(li, name=name, grid=GRID_A, user="aux-li")
        assert reply.headers["Gw-Variant"] == "blurred"
        assert reply.headers["Gw-Pre-Roll"] == "4.000"
        blurred = frames_of(reply.data)
        clear = frames_of(raw)
        assert len(blurred) == len(clear) >= 55
        # the same moments: every picture keeps its time
        assert [round(t, 2) for t, _ in blurred] == [round(t, 2) for t, _ in clear]
        for _, img in blurred:
            assert mask_inside(img).mean() < 25, "the masked area must be black"
        assert mask_inside(clear[0][1]).mean() > 40  # the raw clip shows it

        h, w = clear[0][1].shape[:2]
        seen, shown = [], []
        for i in range(0, len(clear), 6):
            real = people_boxes(detector, clear[i][1])
            seen.append(len(real))
            shown.append(matched(real, people_boxes(detector, blurred[i][1]), h, w))
        assert sum(seen) >= 25, seen  # the scene has people
        assert sum(shown) == 0, (seen, shown)  # none of them recognisable in the clip
        assert blurred[0][1][: int(0.8 * blurred[0][1].shape[0])].std() > 20  # real video

        full = await request_clip_reply(li, name=name, grid=GRID_A, user="aux-li", variant="full")
        assert full.headers["Gw-Variant"] == "blurred"
        assert full.data == reply.data
        assert stack.service.full_views == 0
        assert await stack.audit_records() == []
        assert stack.violations("svc-snaps") == []
        assert stack.violations("aux-li") == []


async def test_full_clips_are_audited_raw_only_without_masks(
    tmp_path: Path, demo_mp4: Path, detector: Detector
) -> None:
    """Attack: an operator (full snapshots) fetches full clips: of a camera without masks, of a
    camera whose clip recorded a mask, and of a camera given a mask in the config after its
    clip was recorded, expecting the camera's video untouched.

    Must happen: without masks the full clip is the stored clip byte for byte; with a mask
    (recorded, or the config's now) it is re-encoded with the mask black and people in
    clear; each full view leaves an audit record (who, role, grid, clip, camera, alert) in
    GW_AUDIT before the clip is answered."""
    raw = demo_clip_mp4(demo_mp4, 28.0, 4.0)
    async with clip_stack(tmp_path) as stack:
        plain = await put_clip(stack.store, "plain", "p1", raw)
        gate = await put_clip(stack.store, "gate", "g1", raw, masks=[MASK])
        yard = await put_clip(stack.store, "yard", "y1", raw)
        op = await stack.users.connect("op-zhang")

        got = await request_clip_reply(op, name=plain, grid=GRID_A, user="op-zhang", variant="full")
        assert got.headers["Gw-Variant"] == "full"
        assert got.data == raw
        assert stack.service.renders == []  # no re-encode for a raw clip

        for name, mask in ((gate, MASK), (yard, YARD_MASK)):
            data = await request_clip(op, name=name, grid=GRID_A, user="op-zhang", variant="full")
            assert data != raw
            pictures = frames_of(data)
            assert len(pictures) == len(frames_of(raw))
            for _, img in pictures:
                assert mask_inside(img, mask).mean() < 25
            middle = pictures[len(pictures) // 2][1]
            assert people(detector, middle) >= 3  # people in clear: a full view

        records = await stack.audit_records()
        assert [r["clip"] for r in records] == [plain, gate, yard]
        for r in records:
            assert r["kind"] == "view"
            assert r["user"] == "op-zhang"
            assert r["role"] == "operator"
            assert r["grid"] == GRID_A
            assert r["blurred"] is False
            assert r["subject"] == f"gw.v1.audit.view.{GRID_A}"
            assert r["at"]
        assert [r["masked"] for r in records] == [False, True, True]
        assert [r["camera"] for r in records] == ["plain", "gate", "yard"]
        assert stack.service.full_views == 3
        assert stack.violations("svc-snaps") == []


async def test_clips_of_another_grid_and_raw_objects_are_refused(
    tmp_path: Path, demo_mp4: Path
) -> None:
    """Attack: a grid B responder asks for a grid A clip (on grid A's subject, and on their
    own grid's subject with grid A's clip name); an operator asks for it under grid B; anyone
    asks for a cached re-encode or a clip that does not exist by name; a responder reads
    ``gw_clips`` directly, or asks under someone else's name.

    Must happen: NATS refuses the requests outside one's grid or name and the object store;
    the service answers not_found for a clip of another grid and invalid for a name that is
    not a clip's. Nothing is served."""
    raw = demo_clip_mp4(demo_mp4, 28.0, 2.0)
    async with clip_stack(tmp_path) as stack:
        name = await put_clip(stack.store, "plain", "p1", raw)
        zhao = await stack.users.connect("aux-zhao")
        with pytest.raises(ClipRequestError) as e:  # NATS: not their grid's subject
            await request_clip(zhao, name=name, grid=GRID_A, user="aux-zhao", reply_timeout=1.5)
        assert e.value.code == "timeout"
        with pytest.raises(ClipRequestError) as e:  # NATS: not their name
            await request_clip(zhao, name=name, grid=GRID_B, user="aux-li", reply_timeout=1.5)
        assert e.value.code == "timeout"
        await asyncio.sleep(0.2)
        refused = " ".join(stack.users.errors["aux-zhao"]).lower()
        assert f"gw.v1.clip-get.{GRID_A}.aux-zhao" in refused
        assert f"gw.v1.clip-get.{GRID_B}.aux-li" in refused

        with pytest.raises(ClipRequestError) as e:
            await request_clip(zhao, name=name, grid=GRID_B, user="aux-zhao")
        assert e.value.code == "not_found"
        op = await stack.users.connect("op-zhang")
        with pytest.raises(ClipRequestError) as e:
            await request_clip(op, name=name, grid=GRID_B, user="op-zhang", variant="full")
        assert e.value.code == "not_found"
        for bad, code in (("plain/p1.full.mp4", "invalid"), ("plain/nope.mp4", "not_found")):
            with pytest.raises(ClipRequestError) as e:
                await request_clip(op, name=bad, grid=GRID_A, user="op-zhang", variant="full")
            assert e.value.code == code, bad

        li = await stack.users.connect("aux-li")
        with pytest.raises(Exception):  # noqa: B017, PT011 - refused by NATS: no answer
            await li.jetstream(timeout=1.0).object_store("gw_clips")
        assert stack.service.full_views == 0


async def test_the_blur_fails_closed_when_the_detector_fails(
    tmp_path: Path, demo_mp4: Path, detector: Detector
) -> None:
    """Attack: the clip service's person detector is broken (a model that will not load),
    and a responder's clip comes out with people in clear.

    Must happen: every picture is pixelated whole (nobody is found in it, fine detail is
    gone), and that variant is not cached (the next request makes it again)."""

    def broken(image: Any) -> list[list[float]]:
        raise RuntimeError("no model")

    raw = demo_clip_mp4(demo_mp4, 28.0, 3.0)
    async with clip_stack(tmp_path, find_people=broken) as stack:
        name = await put_clip(stack.store, "plain", "p1", raw)
        li = await stack.users.connect("aux-li")
        data = await request_clip(li, name=name, grid=GRID_A, user="aux-li")
        pictures, clear = frames_of(data), frames_of(raw)
        assert stack.service.renders[-1].frames_whole == len(pictures) == len(clear)
        for i in (0, len(clear) // 2, len(clear) - 1):
            assert people(detector, pictures[i][1]) == 0
            detail = float(np.abs(np.diff(pictures[i][1].astype(np.float32), axis=1)).mean())
            orig = float(np.abs(np.diff(clear[i][1].astype(np.float32), axis=1)).mean())
            assert detail < 0.35 * orig
        await request_clip(li, name=name, grid=GRID_A, user="aux-li")
        assert len(stack.service.renders) == 2
        assert stack.service.cache_hits == 0
