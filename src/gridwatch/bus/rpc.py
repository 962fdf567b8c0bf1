"""Typed request/reply over core NATS: a pydantic request out, a pydantic :class:`Reply` back.

The request is the model's JSON (``exclude_none``, as the callers always sent it); the reply is
``{"ok": true, ...}`` or ``{"ok": false, "code", "error"}`` (:class:`gridwatch.bus.messages.
Reply`). No responder and no answer in time become errors with codes ``unavailable`` and
``timeout``; a refusal becomes one with the reply's code. The caller chooses the exception
type (``error``), so each client keeps the error its callers catch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from pydantic import BaseModel, ValidationError

from gridwatch.bus.messages import Reply

R = TypeVar("R", bound=Reply)


class RequestError(RuntimeError):
    """A request that was refused (``code`` from the reply) or not answered."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


ErrorFactory = Callable[[str, str], Exception]


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
    """Send ``req`` on ``subject``; the parsed reply when ``ok``, else ``error(code, text)``."""
    data = req.model_dump_json(exclude_none=True).encode()
    try:
        msg = await nc.request(subject, data, timeout=wait_s)
    except nats.errors.NoRespondersError as e:
        raise error("unavailable", unavailable.format(subject=subject, timeout=wait_s)) from e
    except nats.errors.TimeoutError as e:
        raise error("timeout", no_answer.format(subject=subject, timeout=wait_s)) from e
    try:
        reply = reply_type.model_validate_json(msg.data)
    except ValidationError as e:
        raise error("error", f"malformed reply on {subject}: {e}") from e
    if not reply.ok:
        raise error(reply.code or "error", reply.error or "")
    return reply


async def respond(msg: Msg, reply: Reply) -> None:
    """Answer ``msg`` (nothing when it carries no reply subject)."""
    if msg.reply:
        await msg.respond(reply.to_json())
