"""Typed request/reply over core NATS: a pydantic request out, an ok-or-refused answer back.

The request is the model's JSON (``exclude_none``, as the callers always sent it). The answer
is one of two shapes, with the same meaning:

* JSON, :class:`gridwatch.bus.messages.Reply`: ``{"ok": true, ...}`` or ``{"ok": false,
  "code", "error"}`` (the case service);
* binary, :class:`BytesReply`: the payload as the body, described by the service's headers; or
  an empty body with ``Gw-Error: <code>`` and ``Gw-Message: <text>`` (the snapshot service's
  JPEGs).

Either way, no responder and no answer in time become errors with codes ``unavailable`` and
``timeout``; a refusal becomes one with the reply's code; a JSON reply that does not parse one
with code ``error``. The caller chooses the exception type (``error``), so each client keeps the
error its callers catch. :func:`respond` answers with either shape.

A binary reply larger than NATS's ``max_payload`` (1 MB by default: an evidence clip) goes in
chunks (:func:`respond_chunked`, :func:`request_chunked`): the same :class:`BytesReply`, its
data cut into messages of at most :data:`CHUNK_SIZE` bytes published in order to the request's
reply subject, each with ``Gw-Chunk: <i>/<n>`` (1-based); the first also carries the reply's
headers and ``Gw-Size`` (the whole length). A refusal is one message, as above. The client
subscribes to a fresh inbox of its own (``nc.new_inbox()``: under the per-user inbox prefix,
the only replies a person may read) and sends the request with that reply subject; the
responder needs ``allow_responses`` with ``max`` of at least :data:`MAX_CHUNKS` (see
:mod:`gridwatch.auth.permissions`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from pydantic import BaseModel, ValidationError

from gridwatch.bus.messages import Reply

R = TypeVar("R", bound=Reply)

ERROR_HEADER = "Gw-Error"
"""A binary reply's refusal code (its presence marks the refusal)."""
MESSAGE_HEADER = "Gw-Message"
"""A binary refusal's text (at most :data:`MESSAGE_LIMIT` characters)."""
MESSAGE_LIMIT = 200
CHUNK_HEADER = "Gw-Chunk"
"""``<i>/<n>`` (1-based) on each message of a chunked binary reply."""
SIZE_HEADER = "Gw-Size"
"""The whole length of a chunked reply's data, on its first message."""
CHUNK_SIZE = 256 * 1024
"""Bytes per message of a chunked reply (well under the default 1 MB ``max_payload``)."""
MAX_CHUNKS = 4096
"""Messages one chunked reply may have (1 GiB): the responders' ``allow_responses`` max."""
REPLY_WINDOW_S = 600
"""Seconds a responder may take to answer a request it received (``allow_responses``
expiry; a chunked reply's last message must leave within it)."""
STATUS_HEADER = "Status"
NO_RESPONDERS = "503"


class RequestError(RuntimeError):
    """A request that was refused (``code`` from the reply) or not answered."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


ErrorFactory = Callable[[str, str], Exception]


@dataclass(frozen=True)
class BytesReply:
    """A binary answer: ``data`` with ``headers``; a refusal has no data and the headers
    :data:`ERROR_HEADER` (the code) and :data:`MESSAGE_HEADER`."""

    data: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def failure(cls, code: str, error: str) -> BytesReply:
        return cls(b"", {ERROR_HEADER: code, MESSAGE_HEADER: error[:MESSAGE_LIMIT]})

    @classmethod
    def from_msg(cls, msg: Msg) -> BytesReply:
        return cls(bytes(msg.data), dict(msg.headers or {}))

    @property
    def ok(self) -> bool:
        return ERROR_HEADER not in self.headers

    @property
    def code(self) -> str | None:
        return None if self.ok else (self.headers[ERROR_HEADER] or "error")

    @property
    def error(self) -> str | None:
        return None if self.ok else self.headers.get(MESSAGE_HEADER, "")


async def _ask(
    nc: NATS,
    subject: str,
    req: BaseModel,
    *,
    wait_s: float,
    error: ErrorFactory,
    unavailable: str,
    no_answer: str,
) -> Msg:
    data = req.model_dump_json(exclude_none=True).encode()
    try:
        return await nc.request(subject, data, timeout=wait_s)
    except nats.errors.NoRespondersError as e:
        raise error("unavailable", unavailable.format(subject=subject, timeout=wait_s)) from e
    except nats.errors.TimeoutError as e:
        raise error("timeout", no_answer.format(subject=subject, timeout=wait_s)) from e


async def request(
    nc: NATS,
    subject: str,
    req: BaseModel,
    reply_type: type[R],
    *,
    wait_s: float,
    error: ErrorFactory = RequestError,
    unavailable: str = "no service answers on {subject}",
    no_answer: str = "no answer on {subject} within {timeout:.0f}s",
) -> R:
    """Send ``req`` on ``subject``; the parsed JSON reply when ``ok``, else ``error(code,
    text)``."""
    msg = await _ask(
        nc, subject, req, wait_s=wait_s, error=error, unavailable=unavailable, no_answer=no_answer
    )
    try:
        reply = reply_type.model_validate_json(msg.data)
    except ValidationError as e:
        raise error("error", f"malformed reply on {subject}: {e}") from e
    if not reply.ok:
        raise error(reply.code or "error", reply.error or "")
    return reply


async def request_bytes(
    nc: NATS,
    subject: str,
    req: BaseModel,
    *,
    wait_s: float,
    error: ErrorFactory = RequestError,
    unavailable: str = "no service answers on {subject}",
    no_answer: str = "no answer on {subject} within {timeout:.0f}s",
) -> BytesReply:
    """Send ``req`` on ``subject``; the binary reply when it is not a refusal, else
    ``error(code, text)``."""
    msg = await _ask(
        nc, subject, req, wait_s=wait_s, error=error, unavailable=unavailable, no_answer=no_answer
    )
    reply = BytesReply.from_msg(msg)
    if not reply.ok:
        raise error(reply.code or "error", reply.error or "")
    return reply


async def respond(msg: Msg, reply: Reply | BytesReply) -> None:
    """Answer ``msg`` (nothing when it carries no reply subject)."""
    if not msg.reply:
        return
    if isinstance(reply, BytesReply):
        # not msg.respond(): it would send the request's headers back with the answer
        await msg._client.publish(msg.reply, reply.data, headers=dict(reply.headers) or None)
    else:
        await msg.respond(reply.to_json())


async def respond_chunked(
    msg: Msg, reply: BytesReply, *, chunk_size: int = CHUNK_SIZE, flush_every: int = 16
) -> int:
    """Answer ``msg`` with ``reply`` in chunks (see the module docstring); flushes every
    ``flush_every`` chunks so a big reply does not pile up in the client's buffer. Returns the
    messages sent (0 without a reply subject)."""
    if not msg.reply:
        return 0
    nc = msg._client
    if not reply.ok:
        await nc.publish(msg.reply, b"", headers=dict(reply.headers))
        return 1
    data = memoryview(reply.data)
    n = max(1, math.ceil(len(data) / chunk_size))
    if n > MAX_CHUNKS:
        raise ValueError(f"a reply of {len(data)} bytes needs {n} chunks (at most {MAX_CHUNKS})")
    for i in range(n):
        headers = {CHUNK_HEADER: f"{i + 1}/{n}"}
        if i == 0:
            headers = {**reply.headers, SIZE_HEADER: str(len(data)), **headers}
        chunk = bytes(data[i * chunk_size : (i + 1) * chunk_size])
        await nc.publish(msg.reply, chunk, headers=headers)
        if (i + 1) % flush_every == 0 and i + 1 < n:
            await nc.flush()
    return n


def _chunk_of(reply: BytesReply) -> tuple[int, int]:
    """(i, n) of a chunk; (1, 1) for an unchunked answer."""
    text = reply.headers.get(CHUNK_HEADER)
    if text is None:
        return 1, 1
    i, _, n = text.partition("/")
    try:
        index, count = int(i), int(n)
    except ValueError:
        return 0, 0
    return index, count


async def request_chunked(
    nc: NATS,
    subject: str,
    req: BaseModel,
    *,
    wait_s: float,
    chunk_wait_s: float = 10.0,
    error: ErrorFactory = RequestError,
    unavailable: str = "no service answers on {subject}",
    no_answer: str = "no answer on {subject} within {timeout:.0f}s",
) -> BytesReply:
    """Send ``req`` on ``subject`` and collect a chunked binary reply (see the module
    docstring): ``wait_s`` for the first message, ``chunk_wait_s`` for each next one. The
    whole reply (headers of the first message, without the chunk headers) when it is not a
    refusal, else ``error(code, text)``."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, pending_bytes_limit=(MAX_CHUNKS + 1) * CHUNK_SIZE)
    try:
        await nc.publish(subject, req.model_dump_json(exclude_none=True).encode(), reply=inbox)
        try:
            first = await sub.next_msg(timeout=wait_s)
        except (TimeoutError, nats.errors.TimeoutError) as e:
            raise error("timeout", no_answer.format(subject=subject, timeout=wait_s)) from e
        if (first.headers or {}).get(STATUS_HEADER) == NO_RESPONDERS:
            raise error("unavailable", unavailable.format(subject=subject, timeout=wait_s))
        head = BytesReply.from_msg(first)
        if not head.ok:
            raise error(head.code or "error", head.error or "")
        index, count = _chunk_of(head)
        if index != 1 or not 1 <= count <= MAX_CHUNKS:
            raise error("error", f"malformed chunked reply on {subject} ({index}/{count})")
        parts = [head.data]
        for expected in range(2, count + 1):
            try:
                msg = await sub.next_msg(timeout=chunk_wait_s)
            except (TimeoutError, nats.errors.TimeoutError) as e:
                raise error(
                    "timeout", f"the reply on {subject} stopped after {expected - 1} of {count}"
                ) from e
            chunk = BytesReply.from_msg(msg)
            if not chunk.ok:
                raise error(chunk.code or "error", chunk.error or "")
            if _chunk_of(chunk) != (expected, count):
                raise error("error", f"chunk {_chunk_of(chunk)} on {subject}, not {expected}")
            parts.append(chunk.data)
    finally:
        await sub.unsubscribe()
    data = b"".join(parts)
    size = head.headers.get(SIZE_HEADER)
    if size is not None and size != str(len(data)):
        raise error("error", f"reply on {subject}: {len(data)} bytes of {size}")
    headers = {k: v for k, v in head.headers.items() if k not in (CHUNK_HEADER, SIZE_HEADER)}
    return BytesReply(data, headers)
