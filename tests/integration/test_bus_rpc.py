"""Request/reply through a real nats-server: JSON and binary replies, one error convention.

A binary reply (the snapshot service's JPEGs) is the payload with the service's headers, or an
empty body with ``Gw-Error``/``Gw-Message``; the client sees the payload or the same
``error(code, text)`` a JSON refusal gives, and ``unavailable``/``timeout`` when nobody answers.
"""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from pydantic import BaseModel

from gridwatch.bus.messages import Reply
from gridwatch.bus.rpc import (
    ERROR_HEADER,
    MESSAGE_HEADER,
    BytesReply,
    RequestError,
    request,
    request_bytes,
    respond,
)

pytestmark = pytest.mark.timeout(60)

T = 10.0  # seconds: the bound on any single await below
SUBJECT = "test.rpc.bytes"
PAYLOAD = bytes(range(256)) * 64  # binary, with NULs and bytes that are not UTF-8


class Ask(BaseModel):
    name: str
    note: str | None = None


class MyError(RuntimeError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


async def _serve_bytes(nc: NATS, seen: list[Msg]) -> None:
    async def on_request(msg: Msg) -> None:
        seen.append(msg)
        ask = Ask.model_validate_json(msg.data)
        if ask.name == "missing":
            await respond(msg, BytesReply.failure("not_found", f"no {ask.name!r} " + "x" * 300))
        else:
            await respond(msg, BytesReply(PAYLOAD, {"Gw-Variant": "blurred"}))

    await nc.subscribe(SUBJECT, cb=on_request)
    await nc.flush(timeout=T)


async def test_binary_reply_carries_the_payload_and_headers(nc: NATS) -> None:
    seen: list[Msg] = []
    await _serve_bytes(nc, seen)

    reply = await request_bytes(nc, SUBJECT, Ask(name="a.jpg"), wait_s=T)

    assert reply.ok
    assert reply.data == PAYLOAD
    assert reply.headers["Gw-Variant"] == "blurred"
    assert ERROR_HEADER not in reply.headers
    assert (reply.code, reply.error) == (None, None)
    assert seen[0].data == b'{"name":"a.jpg"}'  # the request's JSON without None fields


async def test_binary_refusal_is_headers_on_an_empty_body_and_raises_the_callers_error(
    nc: NATS,
) -> None:
    await _serve_bytes(nc, [])
    raw = await nc.request(SUBJECT, Ask(name="missing").model_dump_json().encode(), timeout=T)
    assert raw.data == b""
    assert raw.headers is not None
    assert raw.headers[ERROR_HEADER] == "not_found"
    assert raw.headers[MESSAGE_HEADER].startswith("no 'missing' ")
    assert len(raw.headers[MESSAGE_HEADER]) == 200

    with pytest.raises(MyError) as e:
        await request_bytes(nc, SUBJECT, Ask(name="missing"), wait_s=T, error=MyError)
    assert e.value.code == "not_found"
    assert str(e.value).startswith("no 'missing' ")
    with pytest.raises(RequestError) as default:
        await request_bytes(nc, SUBJECT, Ask(name="missing"), wait_s=T)
    assert default.value.code == "not_found"


async def test_no_responder_and_no_answer_are_unavailable_and_timeout(nc: NATS) -> None:
    with pytest.raises(MyError) as e:
        await request_bytes(
            nc, "test.rpc.nobody", Ask(name="a"), wait_s=T, error=MyError, unavailable="gone"
        )
    assert (e.value.code, str(e.value)) == ("unavailable", "gone")

    async def never(msg: Msg) -> None:
        return None

    await nc.subscribe("test.rpc.silent", cb=never)
    await nc.flush(timeout=T)
    with pytest.raises(RequestError) as t:
        await request_bytes(nc, "test.rpc.silent", Ask(name="a"), wait_s=0.3)
    assert t.value.code == "timeout"
    assert "test.rpc.silent" in str(t.value)


async def test_json_replies_keep_their_shape_and_errors(nc: NATS) -> None:
    async def on_request(msg: Msg) -> None:
        ask = Ask.model_validate_json(msg.data)
        if ask.name == "no":
            await respond(msg, Reply.failure("forbidden", "not you"))
        else:
            await respond(msg, Reply(ok=True))

    await nc.subscribe("test.rpc.json", cb=on_request)
    await nc.flush(timeout=T)
    assert (await request(nc, "test.rpc.json", Ask(name="a"), Reply, wait_s=T)).ok
    raw = await nc.request("test.rpc.json", b'{"name": "no"}', timeout=T)
    assert not raw.headers
    assert Reply.from_json(raw.data).code == "forbidden"
    with pytest.raises(MyError) as e:
        await request(nc, "test.rpc.json", Ask(name="no"), Reply, wait_s=T, error=MyError)
    assert (e.value.code, str(e.value)) == ("forbidden", "not you")


async def test_respond_without_a_reply_subject_sends_nothing(nc: NATS) -> None:
    got: list[Msg] = []

    async def on_msg(msg: Msg) -> None:
        got.append(msg)
        await respond(msg, BytesReply(b"x"))  # a plain publish: nowhere to answer

    await nc.subscribe("test.rpc.oneway", cb=on_msg)
    await nc.flush(timeout=T)
    await nc.publish("test.rpc.oneway", b'{"name": "a"}')
    await nc.flush(timeout=T)
    for _ in range(100):
        if got:
            break
        await asyncio.sleep(0.02)
    assert len(got) == 1
