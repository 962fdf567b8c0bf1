"""Grid confinement of the console: the one place that decides what a logged-in user may see.

The console talks to NATS with one service account (people's NATS permissions cannot read the
camera registry or health, and the console must not hold their passwords). So the grid a
person is confined to has to be enforced by the console itself, and it is enforced here only:
every handler gets a :class:`Scope` from the auth middleware and asks it

* for the **JetStream filter subjects** of its consumers (a grid responder's wall consumes
  ``gw.v1.alerts.<grid>.*.*`` and ``gw.v1.cases.<grid>.*``: other grids' messages are never
  even delivered to the console for them), and
* to **require** the grid named in a URL before anything is looked up (another grid's alert,
  case, snapshot or camera answers 404, the same as one that does not exist, so ids of other
  grids cannot be probed).

Behind it, the case and snapshot services check again: the console sends case commands with
the person as ``actor`` and asks for snapshots under the person's name, and both services
refuse a grid the person is not in (defence in depth, see docs/console.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web

from gridwatch.alerts.subjects import TOKEN_RE, alert_filter
from gridwatch.auth.models import UserConfig
from gridwatch.auth.subjects import ALL_GRIDS, case_filter

CONSOLE_ROLES: frozenset[str] = frozenset({"operator", "responder", "grid_leader", "admin"})
"""Roles that may log in to the console (service accounts are not people)."""

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Scope:
    """What ``user`` may see: every grid (``grid`` None) or one grid.

    >>> from gridwatch.auth.models import UserConfig
    >>> h = "$2b$04$" + "a" * 53
    >>> s = Scope.of(UserConfig(name="aux-li", role="responder", grid="g1", password_hash=h))
    >>> s.allows("g1"), s.allows("g2"), s.alert_filter()
    (True, False, 'gw.v1.alerts.g1.*.*')
    >>> Scope.of(UserConfig(name="op", role="operator", password_hash=h)).alert_filter()
    'gw.v1.alerts.>'
    """

    user: UserConfig
    grid: str | None

    @classmethod
    def of(cls, user: UserConfig) -> Scope:
        return cls(user=user, grid=user.grid if user.grid_scoped else None)

    @property
    def all_grids(self) -> bool:
        return self.grid is None

    def allows(self, grid_id: str) -> bool:
        """Whether ``grid_id`` is inside this scope. The reserved ``_all`` (every grid, in the
        services' subjects) names no grid: never inside a scope, so never in a URL or an
        action (404), and never audited as one."""
        if grid_id == ALL_GRIDS:
            return False
        if self.grid is None:
            return bool(TOKEN_RE.fullmatch(grid_id))
        return grid_id == self.grid

    def require(self, grid_id: str) -> str:
        """``grid_id`` if inside the scope; else 404 (indistinguishable from absent)."""
        if not TOKEN_RE.fullmatch(grid_id) or not self.allows(grid_id):
            raise web.HTTPNotFound(text="not found")
        return grid_id

    def alert_filter(self) -> str:
        """Subject filter of a JetStream consumer on GW_ALERTS for this scope."""
        return alert_filter(grid=self.grid)

    def case_filter(self) -> str:
        """Subject filter of a JetStream consumer on GW_CASES for this scope."""
        return case_filter(self.grid)

    def grids(self, known: Iterable[str]) -> list[str]:
        """The ids of ``known`` grids inside this scope."""
        return [g for g in known if self.allows(g)]

    def keep(self, items: Iterable[_T]) -> list[_T]:
        """The items whose ``grid_id`` (or ``grid``) attribute or key is inside the scope."""
        out = []
        for it in items:
            g = _grid_of(it)
            if g is not None and self.allows(g):
                out.append(it)
        return out


def _grid_of(item: object) -> str | None:
    if isinstance(item, dict):
        g = item.get("grid_id", item.get("grid"))
    else:
        g = getattr(item, "grid_id", getattr(item, "grid", None))
    return g if isinstance(g, str) else None
