"""The ``users:`` section of the config: people and service accounts, their roles and grids.

Kept apart from :mod:`gridwatch.config` (which includes it) so that the NATS permission
generator, the case service and the notifier share one definition of a role without importing
the whole config machinery.

>>> u = UserConfig(name="aux-li", role="responder", grid="g1", password_hash="$2b$04$" + "a" * 53)
>>> u.grid_scoped, u.is_person
(True, True)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gridwatch.alerts.subjects import TOKEN_RE

Role = Literal["operator", "responder", "grid_leader", "admin", "service"]
ROLES: tuple[Role, ...] = ("operator", "responder", "grid_leader", "admin", "service")
GRID_ROLES: frozenset[str] = frozenset({"responder", "grid_leader"})
"""Roles confined to one grid."""
PERSON_ROLES: frozenset[str] = frozenset({"operator", "responder", "grid_leader"})
"""Roles that act on cases and receive notifications."""

ServiceKind = Literal["worker", "cases", "snapshots", "notifier", "console", "gb28181"]
SERVICE_KINDS: tuple[ServiceKind, ...] = (
    "worker",
    "cases",
    "snapshots",
    "notifier",
    "console",
    "gb28181",
)
"""What a ``service`` account runs; each kind gets only the NATS subjects and JetStream API
calls that process needs (:mod:`gridwatch.auth.natsconf`)."""

BCRYPT_RE = re.compile(r"^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$")


class UserConfig(BaseModel):
    """One NATS login. People log in as themselves, so the server enforces their grid."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        pattern=TOKEN_RE.pattern,
        min_length=1,
        max_length=64,
        title="Name",
        description="Login name (NATS user); letters, digits, '-' and '_'.",
    )
    role: Role = Field(
        title="Role",
        description="operator (command centre, all grids), responder and grid_leader (one "
        "grid), admin (infrastructure), service (workers, case service, notifier).",
    )
    grid: str | None = Field(
        default=None,
        title="Grid",
        description="Grid of a responder or grid_leader (required for them, not allowed for "
        "other roles).",
    )
    password_hash: str = Field(
        title="Password hash",
        description="bcrypt hash of the password (`gridwatch users hash-password`); nats-server "
        "checks it at login.",
    )
    service: ServiceKind | list[ServiceKind] | None = Field(
        default=None,
        title="Service",
        description="For role service: what this account runs (worker, cases, snapshots, "
        "notifier, console, or a list, e.g. [cases, snapshots] for `gridwatch cases serve`); "
        "its NATS permissions are then that process's only. A service without it is "
        "unrestricted: deprecated, `gridwatch config check` warns.",
    )
    display_name: str = Field(default="", title="Display name", description="Shown on cases.")
    on_duty: bool = Field(
        default=True,
        title="On duty",
        description="Receives push notifications (with duty_schedule: only inside it).",
    )
    duty_schedule: str | None = Field(
        default=None,
        title="Duty schedule",
        description="Name of a schedule (top-level 'schedules') when this person is on duty.",
    )

    @field_validator("password_hash")
    @classmethod
    def _bcrypt(cls, v: str) -> str:
        if not BCRYPT_RE.match(v):
            raise ValueError(
                "must be a bcrypt hash ($2b$12$…, see `gridwatch users hash-password`)"
            )
        return v

    @model_validator(mode="after")
    def _grid_for_role(self) -> UserConfig:
        if self.role in GRID_ROLES and self.grid is None:
            raise ValueError(f"a {self.role} needs a grid")
        if self.role not in GRID_ROLES and self.grid is not None:
            raise ValueError(f"a {self.role} is not limited to a grid: remove 'grid'")
        if self.service is not None and self.role != "service":
            raise ValueError(f"a {self.role} runs no service: remove 'service'")
        if isinstance(self.service, list) and not self.service:
            raise ValueError("'service' needs at least one kind")
        return self

    @property
    def service_kinds(self) -> tuple[ServiceKind, ...]:
        """The service kinds of a service account; () for people and unrestricted services."""
        if self.service is None:
            return ()
        kinds = [self.service] if isinstance(self.service, str) else self.service
        return tuple(k for k in SERVICE_KINDS if k in kinds)

    @property
    def grid_scoped(self) -> bool:
        return self.role in GRID_ROLES

    @property
    def is_person(self) -> bool:
        return self.role in PERSON_ROLES

    def may_see_grid(self, grid_id: str) -> bool:
        """Whether this user's view includes ``grid_id`` (operators and admins see all)."""
        if self.role in ("operator", "admin", "service"):
            return True
        return self.grid == grid_id


def user_reference_issues(
    users: Any, grid_ids: Sequence[Any], schedule_names: Sequence[str]
) -> list[tuple[tuple[str | int, ...], str]]:
    """Cross-references in the raw ``users`` list: unknown grids and schedules, duplicate
    names, and the reserved grid token. Returns (path, message) pairs for the config loader."""
    from gridwatch.auth.subjects import ALL_GRIDS

    out: list[tuple[tuple[str | int, ...], str]] = []
    if ALL_GRIDS in grid_ids:
        out.append((("grids", list(grid_ids).index(ALL_GRIDS), "id"), f"{ALL_GRIDS!r} is reserved"))
    seen: set[Any] = set()
    for i, u in enumerate(users if isinstance(users, list) else []):
        if not isinstance(u, dict):
            continue
        name = u.get("name")
        if name is not None and name in seen:
            out.append((("users", i, "name"), f"duplicate user name {name!r}"))
        seen.add(name)
        grid = u.get("grid")
        if isinstance(grid, str) and grid not in grid_ids:
            known = ", ".join(str(g) for g in grid_ids) or "none defined"
            out.append((("users", i, "grid"), f"unknown grid {grid!r} (known: {known})"))
        sched = u.get("duty_schedule")
        if isinstance(sched, str) and sched not in schedule_names:
            known = ", ".join(schedule_names) or "none defined"
            out.append(
                (("users", i, "duty_schedule"), f"unknown schedule {sched!r} (known: {known})")
            )
    return out
