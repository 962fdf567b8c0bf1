"""What the console asks of NATS, always on behalf of one logged-in person.

The console holds one service connection. A service account may send case commands on the
bare ``gw.v1.case-cmd.<grid>`` with the person as ``actor`` (see
:mod:`gridwatch.cases.service`), and ask the snapshot service on
``gw.v1.snapshot-get.<grid>.<person>``: so the case service applies the person's role and grid
to every action, and the snapshot and clip services blur or refuse exactly as they would for
the person's own phone (clips: ``gw.v1.clip-get.<grid>.<person>``). The console has checked
the grid already (:mod:`.scope`); these services check it again.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from pydantic import ValidationError

from gridwatch.alerts.clip_service import request_clip_reply, served_variant
from gridwatch.alerts.snapshot_service import request_snapshot
from gridwatch.alerts.subjects import ALERTS_STREAM, alert_filter, alert_subject, check_token
from gridwatch.alerts.tail import parse_alert
from gridwatch.auth.models import UserConfig
from gridwatch.auth.subjects import (
    ALL_GRIDS,
    AUDIT_PREFIX,
    AUDIT_STREAM,
    CASES_STREAM,
    case_cmd_subject,
    case_subject,
)
from gridwatch.bus.consumers import StreamFollower, read_ordered, replay
from gridwatch.bus.messages import CaseReply
from gridwatch.bus.names import CONSOLE_REPLAY_CONSUMER_PREFIX
from gridwatch.bus.rpc import request
from gridwatch.cases.client import CaseRequestError
from gridwatch.cases.model import Case, CaseCommand, CaseEvent, CaseState
from gridwatch.cases.store import iter_events
from gridwatch.model import Alert
from gridwatch.notify.subscriptions import ensure_push_bucket, register_subscription
from gridwatch.worker.clips import CLIP_PRE_ROLL_HEADER


class ConsoleBackend:
    """Case commands, case history, alert messages, audit records, snapshots, clips and push
    registration.

    ``clip_timeout``: how long a clip may take to come (a blurred or masked one is re-encoded
    by the clip service first, seconds to a minute)."""

    def __init__(
        self,
        nc: NATS,
        *,
        timeout: float = 5.0,
        lookback_s: float = 86400.0,
        clip_timeout: float = 120.0,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.timeout = timeout
        self.lookback_s = lookback_s
        self.clip_timeout = clip_timeout

    async def _case_request(self, grid: str, user: UserConfig, cmd: CaseCommand) -> CaseReply:
        return await request(
            self.nc,
            case_cmd_subject(grid),
            cmd.model_copy(update={"actor": user.name}),
            CaseReply,
            wait_s=self.timeout,
            error=CaseRequestError,
            unavailable="the case service is not running",
            no_answer="the case service did not answer",
        )

    async def act(self, user: UserConfig, grid: str, cmd: CaseCommand) -> Case:
        """Run ``cmd`` on a case of ``grid`` as ``user``; the case after it."""
        reply = await self._case_request(grid, user, cmd)
        return Case.model_validate(reply.case)

    async def get_case(self, user: UserConfig, grid: str, case_id: str) -> Case | None:
        try:
            return await self.act(user, grid, CaseCommand(op="get", case_id=case_id))
        except CaseRequestError as e:
            if e.code == "not_found":
                return None
            raise

    async def list_cases(
        self, user: UserConfig, grid: str | None, states: list[CaseState] | None, limit: int = 500
    ) -> list[Case]:
        reply = await self._case_request(
            grid or ALL_GRIDS, user, CaseCommand(op="list", states=states, limit=limit)
        )
        return [Case.model_validate(c) for c in reply.cases or []]

    async def history(self, grid: str, case_id: str) -> list[CaseEvent]:
        """Every stored event of one case, oldest first."""
        return [ev async for _, ev in iter_events(self.js, case_subject(grid, case_id))]

    async def history_records(self, grid: str, case_id: str) -> list[tuple[Msg, CaseEvent]]:
        """:meth:`history` with each event's stored message (stream sequence, stored time)."""
        out = []
        async for msg in read_ordered(self.js, CASES_STREAM, case_subject(grid, case_id)):
            try:
                out.append((msg, CaseEvent.model_validate_json(msg.data)))
            except ValidationError:
                continue  # (iter_events logs these for the history view)
        return out

    async def alert_messages(
        self, grid: str, alert_id: str, case: Case | None, *, limit: int = 2000
    ) -> list[tuple[dt.datetime, Alert]]:
        """The stored messages of one incident (raised, updates, cleared) with their stored
        times. With its case known, only that camera's and type's subject is read."""
        found = await self.alert_records(grid, alert_id, case, limit=limit)
        return [(msg.metadata.timestamp, alert) for msg, alert in found]

    async def alert_records(
        self, grid: str, alert_id: str, case: Case | None, *, limit: int = 2000
    ) -> list[tuple[Msg, Alert]]:
        """:meth:`alert_messages` with the stored messages themselves (their exact bytes)."""
        if case is not None and case.camera_id and case.type:
            subject = alert_subject(grid, case.camera_id, case.type)
            start = case.opened_at - dt.timedelta(minutes=10)
        else:
            subject = alert_filter(grid)
            start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=self.lookback_s)
        out = []
        for msg in await replay(self.js, ALERTS_STREAM, subject, start=start, limit=limit):
            alert = parse_alert(msg)
            if alert is not None and alert.id == alert_id and alert.grid_id == grid:
                out.append((msg, alert))
        return out

    async def scan_audit(
        self, grid: str, start: dt.datetime, keep: Callable[[Msg], bool], *, limit: int
    ) -> tuple[list[Msg], int]:
        """The audit records of ``grid`` (every kind) stored since ``start`` that ``keep``
        accepts, and how many were read (at most ``limit``; read one at a time, so a long
        history costs time, not memory). The console's own identity may read GW_AUDIT;
        people may not."""
        subject = f"{AUDIT_PREFIX}.*.{check_token(grid, 'grid id')}"
        follower = StreamFollower(
            self.js,
            AUDIT_STREAM,
            subject,
            start=start,
            prefix=CONSOLE_REPLAY_CONSUMER_PREFIX,
            heal=True,
        )
        kept: list[Msg] = []
        read = 0
        try:
            await follower.open()
            while not follower.caught_up and read < limit:
                msg = await follower.next(3.0)
                if msg is None:
                    break
                read += 1
                if keep(msg):
                    kept.append(msg)
        finally:
            await follower.close()
        return kept, read

    async def snapshot(
        self, user: UserConfig, grid: str, name: str, *, full: bool
    ) -> tuple[bytes, str]:
        """The JPEG as the snapshot service serves it to ``user`` (blurred unless ``full`` and
        their role may); (data, variant served). Raises SnapshotRequestError."""
        return await request_snapshot(
            self.nc,
            grid=grid,
            user=user.name,
            name=name,
            variant="full" if full else "blurred",
            reply_timeout=self.timeout,
        )

    async def clip(
        self, user: UserConfig, grid: str, name: str, *, full: bool
    ) -> tuple[bytes, str, float | None]:
        """The MP4 of clip ``name`` as the clip service serves it to ``user`` (blurred unless
        ``full`` and their role may; a full one audited by the service before it leaves): (data,
        variant served, the onset's offset into the clip in seconds, None when the clip does
        not say). Raises ClipRequestError."""
        reply = await request_clip_reply(
            self.nc,
            name=name,
            grid=grid,
            user=user.name,
            variant="full" if full else "blurred",
            reply_timeout=self.clip_timeout,
        )
        try:
            onset: float | None = float(reply.headers[CLIP_PRE_ROLL_HEADER])
        except (KeyError, ValueError):
            onset = None
        if onset is not None and not (math.isfinite(onset) and onset >= 0):
            onset = None
        return reply.data, served_variant(reply), onset

    async def register_push(
        self, user: UserConfig, subscription: dict[str, Any], *, max_per_user: int | None = None
    ) -> str:
        """Store a browser's Web Push subscription where the notifier reads them (with
        ``max_per_user``, the user's oldest beyond it are removed)."""
        await ensure_push_bucket(self.js)
        return await register_subscription(
            self.js, user.name, subscription, max_per_user=max_per_user
        )
