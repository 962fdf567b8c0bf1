"""JetStream objects of cases: stream ``GW_CASES`` (the truth), KV ``gw_cases`` (fast reads).

Events are appended with ``Nats-Expected-Last-Subject-Sequence`` = the sequence of the case's
last event: each case has its own subject, so this is optimistic concurrency per case done by
the server. Two case-service instances (or one that restarted with a stale view) cannot both
append "acknowledged" to the same case; the loser reloads the case and decides again.
``Nats-Msg-Id: <case id>.v<version>`` makes a retried append single.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.errors import APIError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from gridwatch.auth.subjects import CASES_KV, CASES_PREFIX, CASES_STREAM, case_key, case_subject
from gridwatch.bus.consumers import read_ordered
from gridwatch.bus.infra import ensure_case_infra as ensure_case_infra
from gridwatch.cases.model import Case, CaseEvent, apply

log = logging.getLogger(__name__)

DAY_S = 86400.0
WRONG_LAST_SEQ = 10071


class ConflictError(RuntimeError):
    """The case changed since it was read (another writer); reload and decide again."""


async def append_event(
    js: JetStreamContext, case: Case | None, event: CaseEvent, *, ack_timeout: float = 5.0
) -> Case:
    """Append ``event`` to the case's subject and return the new state (with ``last_seq``).

    Raises :class:`ConflictError` when the case has moved on since ``case`` was read.
    """
    headers = {
        "Nats-Msg-Id": event.message_id,
        "Nats-Expected-Last-Subject-Sequence": str(case.last_seq if case is not None else 0),
    }
    try:
        ack = await js.publish(
            case_subject(event.grid_id, event.case_id),
            event.model_dump_json().encode(),
            timeout=ack_timeout,
            stream=CASES_STREAM,
            headers=headers,
        )
    except APIError as e:
        if e.err_code == WRONG_LAST_SEQ:
            raise ConflictError(str(e)) from e
        raise
    return apply(case, event).model_copy(update={"last_seq": ack.seq})


async def iter_events(
    js: JetStreamContext, subject_filter: str, *, idle_timeout: float = 5.0
) -> AsyncIterator[tuple[int, CaseEvent]]:
    """Every stored event matching ``subject_filter``, in order, then stop (a replay)."""
    async for msg in read_ordered(js, CASES_STREAM, subject_filter, idle_timeout=idle_timeout):
        seq = msg.metadata.sequence.stream
        try:
            yield seq, CaseEvent.model_validate_json(msg.data)
        except ValidationError as e:
            log.warning("skipping unparseable case event at seq %d: %s", seq, e)


async def load_case(js: JetStreamContext, grid_id: str, case_id: str) -> Case | None:
    """Fold one case's events from the stream (the authoritative state)."""
    case: Case | None = None
    async for seq, ev in iter_events(js, case_subject(grid_id, case_id)):
        case = apply(case, ev).model_copy(update={"last_seq": seq})
    return case


async def load_all(js: JetStreamContext) -> dict[str, Case]:
    """Every case, rebuilt by replaying GW_CASES, keyed by ``<grid>.<id>``."""
    cases: dict[str, Case] = {}
    async for seq, ev in iter_events(js, f"{CASES_PREFIX}.>"):
        key = case_key(ev.grid_id, ev.case_id)
        cases[key] = apply(cases.get(key), ev).model_copy(update={"last_seq": seq})
    return cases


async def cache_case(kv: KeyValue, case: Case, *, put_timeout: float = 5.0) -> None:
    """Best effort: the KV copy is a cache, rebuilt from the stream when it is stale."""
    try:
        await asyncio.wait_for(
            kv.put(case_key(case.grid_id, case.id), case.model_dump_json().encode()), put_timeout
        )
    except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as e:
        log.warning("case %s not cached in %s: %s", case.id, CASES_KV, e)
