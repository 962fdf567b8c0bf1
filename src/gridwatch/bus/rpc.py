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
"""

from __future__ import annotations

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
