"""The clip service (issue 14, items 2 and 3): cached re-encodes, replies larger than NATS's
max_payload in chunks, and ``gridwatch clip get``.

Real parts: nats-server (the generated secure configuration, and a plain one for the bus
layer), clips cut from the demo video as the worker cuts them, the clip service's re-encode
(PyAV, libx264, the live view's person detector), the ``gridwatch`` executable.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
import time
from pathlib import Path
from typing import Any

import av
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from pydantic import BaseModel

from gridwatch.alerts.clip_service import (
    SOURCE_HEADER,
    VARIANT_HEADER,
    request_clip,
    request_clip_reply,
    variant_name,
)
from gridwatch.alerts.publisher import AlertPublisher
from gridwatch.alerts.streams import ensure_alert_infra
from gridwatch.bus.rpc import (
    CHUNK_SIZE,
    BytesReply,
    RequestError,
    request_chunked,
    respond_chunked,
)
from gridwatch.worker.clips import CLIP_GRID_HEADER, CLIP_MASKS_HEADER, clip_name
from tests.plugins.clips import (
    MASK,
    clip_config_text,
    clip_stack,
    demo_clip_mp4,
    frames_of,
    put_clip,
)
from tests.plugins.dispatch import GRID_A, make_alert, password

pytestmark = [pytest.mark.timeout(240)]


class Ask(BaseModel):
    what: str


async def test_chunked_replies_carry_more_than_max_payload(nats_connect: Any) -> None:
    """bus.rpc: a 3 MB answer (three times the server's max_payload) arrives whole, in order,
    in 256 KiB chunks to the requester's own inbox; a refusal is one message and keeps its
    code; no responder and no answer are told apart."""
    server_nc: NATS = await nats_connect()
    client: NATS = await nats_connect()
    assert client.max_payload <= 1024 * 1024
    payload = os.urandom(3 * 1024 * 1024 + 1234)
    sent: list[int] = []

    async def on_request(msg: Msg) -> None:
        ask = Ask.model_validate_json(msg.data)
        if ask.what == "refuse":
            sent.append(await respond_chunked(msg, BytesReply.failure("forbidden", "no")))
        elif ask.what == "small":
            sent.append(await respond_chunked(msg, BytesReply(b"tiny", {"Gw-Variant": "x"})))
        elif ask.what == "big":
            sent.append(await respond_chunked(msg, BytesReply(payload, {"Gw-Variant": "full"})))

    await server_nc.subscribe("svc.ask", cb=on_request)
    await server_nc.flush()
    # the service is up once a request finds it (a fresh-clone CI run under load once got
    # "no responders" right after the flush)
    for _ in range(50):
        try:
            await request_chunked(client, "svc.ask", Ask(what="small"), wait_s=5)
            break
        except RequestError as e:
            if e.code != "unavailable":
                raise
            await asyncio.sleep(0.1)

    reply = await request_chunked(client, "svc.ask", Ask(what="big"), wait_s=5)
    assert reply.data == payload
    assert reply.headers == {"Gw-Variant": "full"}
    assert sent[-1] == -(-len(payload) // CHUNK_SIZE) == 13
    small = await request_chunked(client, "svc.ask", Ask(what="small"), wait_s=5)
    assert (small.data, small.headers, sent[-1]) == (b"tiny", {"Gw-Variant": "x"}, 1)
    with pytest.raises(RequestError) as e:
        await request_chunked(client, "svc.ask", Ask(what="refuse"), wait_s=5)
    assert (e.value.code, str(e.value)) == ("forbidden", "no")
    with pytest.raises(RequestError) as e:
        await request_chunked(client, "svc.ask", Ask(what="silence"), wait_s=0.5)
    assert e.value.code == "timeout"
    with pytest.raises(RequestError) as e:
        await request_chunked(client, "nobody.here", Ask(what="big"), wait_s=5)
    assert e.value.code == "unavailable"


async def test_a_clip_over_1_mb_arrives_whole_through_chunks(
    tmp_path: Path, demo_mp4: Path
) -> None:
    """A 12-second clip (about 2 MB, twice NATS's max_payload) reaches an operator whole
    through the restricted identities: the service's replies to the operator's inbox are
    allowed for many messages (allow_responses max), and nobody sees a permissions violation."""
    raw = demo_clip_mp4(demo_mp4, 20.0, 12.0)
    assert len(raw) > 1024 * 1024
    async with clip_stack(tmp_path) as stack:
        name = await put_clip(stack.store, "plain", "big1", raw)
        op = await stack.users.connect("op-zhang")
        assert len(raw) > op.max_payload
        data = await request_clip(op, name=name, grid=GRID_A, user="op-zhang", variant="full")
        assert data == raw
        assert stack.violations("svc-snaps") == []
        assert stack.violations("op-zhang") == []


async def test_the_second_request_is_served_from_the_cache(tmp_path: Path, demo_mp4: Path) -> None:
    """A blurred clip is re-encoded once: two people asking at the same time share the render,
    the next request reads the variant cached in gw_clips (the clip's headers, Gw-Variant,
    Gw-Source: the clip's digest, Gw-Masks: what was painted); a clip stored again (a retried
    put with other video) is rendered again, not served from the stale cache."""
    raw = demo_clip_mp4(demo_mp4, 28.0, 4.0)
    async with clip_stack(tmp_path) as stack:
        name = await put_clip(stack.store, "gate", "c1", raw, masks=[MASK])
        li, wang = await stack.users.connect("aux-li"), await stack.users.connect("lead-wang")
        t0 = time.monotonic()
        first, second = await asyncio.gather(
            request_clip(li, name=name, grid=GRID_A, user="aux-li"),
            request_clip(wang, name=name, grid=GRID_A, user="lead-wang"),
        )
        made_s = time.monotonic() - t0
        assert first == second
        assert len(stack.service.renders) == 1
        result = stack.service.renders[0]
        assert result.frames == len(frames_of(raw))
        print(
            f"blurred re-encode: {result.duration_s:.1f} s of video, {result.wall_s:.2f} s wall, "
            f"{result.cpu_s:.2f} s CPU ({result.cpu_per_video_s:.2f} CPU-s per video-s), "
            f"{result.looks} looks"
        )

        info = await stack.store.get_info(variant_name(name, "blurred"))
        source = await stack.store.get_info(name)
        headers = {k: v[0] for k, v in (info.headers or {}).items()}
        assert headers[VARIANT_HEADER] == "blurred"
        assert headers[SOURCE_HEADER] == source.digest
        assert headers[CLIP_GRID_HEADER] == GRID_A
        assert headers[CLIP_MASKS_HEADER] == "[[[0.84,0.33],[1.0,0.33],[1.0,0.8],[0.84,0.8]]]"

        t0 = time.monotonic()
        again = await request_clip(li, name=name, grid=GRID_A, user="aux-li")
        read_s = time.monotonic() - t0
        assert again == first
        assert stack.service.cache_hits == 1
        assert len(stack.service.renders) == 1
        assert read_s < made_s / 2, (read_s, made_s)

        await put_clip(stack.store, "gate", "c1", demo_clip_mp4(demo_mp4, 40.0, 4.0), masks=[MASK])
        other = await request_clip(li, name=name, grid=GRID_A, user="aux-li")
        assert other != first
        assert len(stack.service.renders) == 2
        assert stack.violations("svc-snaps") == []


async def test_gridwatch_clip_get_writes_a_playable_file(tmp_path: Path, demo_mp4: Path) -> None:
    """``gridwatch clip get ALERT_ID -o x.mp4`` as a responder: the alert is looked up in their
    grid's GW_ALERTS, its clip fetched through the clip service (blurred: ``--full`` is not
    theirs), the file plays (every picture decodes, the clip's length); a clip name works
    too, and an unknown alert fails with exit code 1."""
    raw = demo_clip_mp4(demo_mp4, 28.0, 4.0)
    cfg_file = tmp_path / "gridwatch.yaml"
    cfg_file.write_text(clip_config_text(), encoding="utf-8")
    async with clip_stack(tmp_path) as stack:
        infra_nc = stack.worker
        await asyncio.wait_for(ensure_alert_infra(infra_nc.jetstream()), 10)
        base = make_alert(GRID_A, "gate", 1)
        alert = base.model_copy(update={"clip": clip_name("gate", base.id)})
        await AlertPublisher(infra_nc).publish(alert)
        await put_clip(stack.store, "gate", alert.id, raw, masks=[MASK])

        exe = str(Path(sys.executable).with_name("gridwatch"))
        env = {**os.environ, "GW_NATS_PASSWORD": password("aux-li")}
        common = ["-c", str(cfg_file), "--nats", stack.server.url, "--user", "aux-li"]

        async def gw(*args: str) -> tuple[int, str]:
            proc = await asyncio.create_subprocess_exec(
                exe,
                "clip",
                "get",
                *args,
                *common,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            out, _ = await asyncio.wait_for(proc.communicate(), 180)
            return proc.returncode or 0, out.decode()

        target = tmp_path / "x.mp4"
        code, out = await gw(alert.id, "-o", str(target), "--full")
        assert code == 0, out
        assert "blurred; full is not allowed to your role" in out
        with av.open(str(target)) as c:
            stream = c.streams.video[0]
            assert stream.codec_context.name == "h264"
            times = [float(f.time) for f in c.decode(stream) if f.time is not None]
        assert len(times) == len(frames_of(raw))
        assert times[0] == 0.0
        assert times[-1] == pytest.approx(frames_of(raw)[-1][0], abs=0.05)

        by_name = tmp_path / "by-name.mp4"
        code, out = await gw(alert.clip or "", "-o", str(by_name), "--grid", GRID_A)
        assert code == 0, out
        assert by_name.read_bytes() == target.read_bytes()  # the cached variant

        code, out = await gw("0123456789abcdef01234567", "-o", str(tmp_path / "none.mp4"))
        assert code == 1, out
        assert "no raised alert" in out

        reply = await request_clip_reply(
            await stack.users.connect("aux-li"), name=alert.clip or "", grid=GRID_A, user="aux-li"
        )
        with av.open(io.BytesIO(reply.data)) as c:
            assert c.streams.video[0].frames in (0, len(times))  # fragmented: count unknown
        assert stack.violations("aux-li") == []
