"""Talking to the case service: what ``gridwatch cases ...`` and the console use.

A person's request goes to ``gw.v1.case-cmd.<grid>.<their name>`` (the only command subject
their NATS permissions allow). Operators, who see every grid, may use the grid token
``_all`` to list cases or look one up; a change is then sent on the case's own grid.
"""

from __future__ import annotations

from nats.aio.client import Client as NATS

from gridwatch.auth.subjects import ALL_GRIDS, case_cmd_subject
from gridwatch.bus.messages import CaseReply
from gridwatch.bus.rpc import request
from gridwatch.cases.model import Case, CaseCommand, CaseState, Outcome


class CaseRequestError(RuntimeError):
    """The case service refused a command (``code``: invalid, forbidden, not_found, conflict,
    unavailable) or did not answer (``timeout``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class CaseClient:
    """Sends case commands as ``user`` (who must be the NATS user of ``nc``)."""

    def __init__(self, nc: NATS, user: str, *, grid: str | None = None, timeout: float = 5.0):
        self.nc = nc
        self.user = user
        self.grid = grid or ALL_GRIDS
        self.timeout = timeout

    async def _request(self, cmd: CaseCommand, grid: str | None = None) -> CaseReply:
        return await request(
            self.nc,
            case_cmd_subject(grid or self.grid, self.user),
            cmd,
            CaseReply,
            wait_s=self.timeout,
            error=CaseRequestError,
            unavailable="no case service is running",
            no_answer="no answer on {subject} within {timeout:.0f}s (is the case service "
            "running, and may this user publish there?)",
        )

    async def _case(self, cmd: CaseCommand) -> Case:
        grid = None
        if self.grid == ALL_GRIDS and cmd.op != "get" and cmd.case_id:
            # changes go to the case's own grid (the service refuses them through "_all")
            found = await self._request(CaseCommand(op="get", case_id=cmd.case_id))
            grid = Case.model_validate(found.case).grid_id
        body = await self._request(cmd, grid)
        return Case.model_validate(body.case)

    async def list(self, states: list[CaseState] | None = None, limit: int = 100) -> list[Case]:
        body = await self._request(CaseCommand(op="list", states=states, limit=limit))
        return [Case.model_validate(c) for c in body.cases or []]

    async def get(self, case_id: str) -> Case:
        return await self._case(CaseCommand(op="get", case_id=case_id))

    async def acknowledge(self, case_id: str) -> Case:
        return await self._case(CaseCommand(op="acknowledge", case_id=case_id))

    async def dispatch(self, case_id: str, responder: str | None = None) -> Case:
        return await self._case(CaseCommand(op="dispatch", case_id=case_id, responder=responder))

    async def on_scene(self, case_id: str) -> Case:
        return await self._case(CaseCommand(op="on_scene", case_id=case_id))

    async def resolve(self, case_id: str, outcome: Outcome | str, note: str = "") -> Case:
        return await self._case(
            CaseCommand(op="resolve", case_id=case_id, outcome=Outcome(outcome), note=note)
        )
