"""Who may view a picture, and the audit record a full view leaves: one set of rules for the
snapshot service and the clip service.

Both answer ``gw.v1.<what>-get.<grid>.<user>`` (NATS lets people publish only under their own
name, so the subject says who asks), both refuse accounts that are not people (admins
excepted) and people outside the grid, both give the full picture only to roles in
``notify.full_snapshot_roles`` and only after JetStream has acknowledged the view's audit
record in GW_AUDIT (no record, no picture), and both answer a refusal the same way
(``Gw-Error`` with a code: forbidden, not_found, invalid, audit, unavailable).

>>> from gridwatch.auth.models import UserConfig
>>> aux = UserConfig(name="aux", role="responder", grid="g1", password_hash="$2b$04$" + "a" * 53)
>>> check_viewer(aux, "g1", "snapshots", RequestError)
>>> check_viewer(aux, "g2", "snapshots", RequestError)
Traceback (most recent call last):
...
gridwatch.bus.rpc.RequestError: aux is not in grid g2
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from nats.aio.client import Client as NATS

from gridwatch.auth.models import UserConfig
from gridwatch.auth.subjects import AUDIT_STREAM
from gridwatch.bus.rpc import BytesReply, RequestError

log = logging.getLogger(__name__)


def check_viewer(user: UserConfig, grid: str, what: str, denied: type[RequestError]) -> None:
    """Refuse (``denied("forbidden", …)``) an account that does not view ``what`` or a person
    outside ``grid``."""
    if not user.is_person and user.role != "admin":
        raise denied("forbidden", f"a {user.role} account does not view {what}")
    if not user.may_see_grid(grid):
        raise denied("forbidden", f"{user.name} is not in grid {grid}")


def requester(
    subject: str, users: Mapping[str, UserConfig], denied: type[RequestError]
) -> tuple[str, UserConfig]:
    """(grid, user) of a ``gw.v1.<what>-get.<grid>.<user>`` request subject."""
    parts = subject.split(".")
    if len(parts) != 5:
        raise denied("invalid", "bad subject")
    grid, name = parts[3], parts[4]
    user = users.get(name)
    if user is None:
        raise denied("forbidden", f"unknown user {name!r}")
    return grid, user


def failure(e: Exception, subject: str, denied: type[RequestError]) -> BytesReply:
    """The refusal for ``e``: its own code when it is a refusal, ``invalid`` for a bad request,
    ``unavailable`` (logged with its traceback) for anything else."""
    if isinstance(e, denied):
        code = e.code
    elif isinstance(e, ValueError):
        code = "invalid"
    else:
        log.error("request on %s failed", subject, exc_info=e)
        code = "unavailable"
    return BytesReply.failure(code, str(e))


async def audit_full_view(
    nc: NATS,
    subject: str,
    record: dict[str, Any],
    *,
    ack_timeout: float,
    denied: type[RequestError],
) -> None:
    """Store ``record`` in GW_AUDIT, acknowledged, before a full picture leaves; on failure
    log it and refuse (``denied("audit", …)``)."""
    try:
        await nc.jetstream().publish(
            subject, json.dumps(record).encode(), stream=AUDIT_STREAM, timeout=ack_timeout
        )
    except Exception as e:
        log.error("AUDIT record not stored (%s): refusing the full view %s", e, record)
        raise denied("audit", "the view could not be audited, so it is not shown") from e
    log.info("AUDIT full view %s", record)
