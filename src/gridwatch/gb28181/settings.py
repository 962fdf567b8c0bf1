"""The ``gb28181:`` config section: gridwatch as a lower platform of a GB/T 28181 superior.

Every id is checked for its type code here (ours must be a platform, 200), so a wrong id is a
``gridwatch config check`` error with file and line rather than a registration the superior
refuses with a bare 403. The password may stay out of the file: an empty ``password`` takes
``$GW_GB28181_PASSWORD`` (as NATS credentials take ``$GW_NATS_PASSWORD``).

>>> s = Gb28181Settings.model_validate({"device_id": "34020000002000000001",
...     "superior": {"id": "34020000002000000002", "host": "10.0.0.1"}, "version": 2022})
>>> s.superior.domain, s.superior.port, s.version, s.effective_civil_code()
('3402000000', 5060, '2022', '340200')
>>> s.alarm_table()["crowding"]
AlarmCode(method=5, alarm_type=10, event_type=None)
"""

from __future__ import annotations

import os
import re
import zoneinfo
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from gridwatch.config.strict import Strict
from gridwatch.gb28181.alarm_map import DEFAULT_ALARM_TYPES, AlarmCode
from gridwatch.gb28181.ids import (
    CAMERA,
    CHANNEL,
    PLATFORM,
    camera_channel_id,
    grid_group_id,
    grid_org_id,
    id_plan_collisions,
    validate_gb_id,
)

PASSWORD_ENV = "GW_GB28181_PASSWORD"
"""Environment variable holding the registration password when the config leaves it empty."""

_CIVIL_RE = re.compile(r"^\d{2}(?:\d{2}){0,3}$")


class SuperiorSettings(Strict):
    """The superior platform we register with (its administrator gives these values)."""

    id: str = Field(
        title="Superior id",
        description="The superior's 20-digit SIP server id (type code 200).",
    )
    domain: str = Field(
        default="",
        title="Domain",
        description="The superior's SIP domain (realm); empty: the first 10 digits of its id.",
    )
    host: str = Field(min_length=1, title="Host", description="The superior's address or name.")
    port: int = Field(default=5060, ge=1, le=65535, title="Port", description="SIP port.")
    transport: Literal["udp", "tcp"] = Field(
        default="udp", title="Transport", description="udp or tcp, as the superior expects."
    )

    @field_validator("id", mode="before")
    @classmethod
    def _id_text(cls, v: Any) -> Any:
        return id_text(v)

    @field_validator("id")
    @classmethod
    def _platform_id(cls, v: str) -> str:
        return validate_gb_id(v, {PLATFORM})

    @model_validator(mode="after")
    def _default_domain(self) -> SuperiorSettings:
        if not self.domain:
            object.__setattr__(self, "domain", self.id[:10])
        return self


class AlarmTypeEntry(Strict):
    """One rule type's GB/T 28181 alarm code, replacing the default table's entry."""

    alarm_method: int = Field(
        default=5,
        ge=1,
        le=7,
        title="AlarmMethod",
        description="1 phone, 2 device, 3 SMS, 4 GPS, 5 video, 6 device fault, 7 other.",
    )
    alarm_type: int | None = Field(
        default=None,
        ge=1,
        le=99,
        title="AlarmType",
        description="The <Info><AlarmType> code (video: 10 density, 6 intrusion, 5 tripwire, "
        "8 loitering, 11 video abnormal, 12 fast moving, 3 abandoned); none: no <Info>.",
    )
    event_type: int | None = Field(
        default=None,
        ge=1,
        le=99,
        title="EventType",
        description="<AlarmTypeParam><EventType> (intrusion: 1 enter, 2 leave); none: omitted.",
    )

    def code(self) -> AlarmCode:
        return AlarmCode(self.alarm_method, self.alarm_type, self.event_type)


class Gb28181Settings(Strict):
    """GB/T 28181 alarm cascade to a superior platform (`gridwatch gb28181 serve`)."""

    enabled: bool = Field(
        default=False,
        title="Enabled",
        description="Run the cascade; also makes a gb28181_id required on every camera.",
    )
    device_id: str = Field(
        title="Our id",
        description="Our 20-digit id as a lower platform (type code 200), from the superior's "
        "administrator; also the REGISTER username. Grid ids derive from its first 10 digits.",
    )
    password: SecretStr = Field(
        default=SecretStr(""),
        title="Password",
        description=f"Registration password; empty: ${PASSWORD_ENV}.",
    )
    superior: SuperiorSettings = Field(
        title="Superior", description="The platform we register with."
    )
    local_host: str = Field(
        default="",
        title="Local address",
        description="Address to bind and to put in Via/Contact; empty: the address of the "
        "interface that routes to the superior.",
    )
    local_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        title="Local port",
        description="Our SIP port; 0: an ephemeral port.",
    )
    expires_s: int = Field(
        default=3600,
        ge=60,
        le=86400,
        title="Registration expiry",
        description="Expires asked for in REGISTER; refreshed at about 80% of what is granted.",
    )
    keepalive_s: int = Field(
        default=60, ge=5, le=3600, title="Keepalive", description="Seconds between Keepalives."
    )
    keepalive_timeout_count: int = Field(
        default=3,
        ge=1,
        le=100,
        title="Keepalive failures",
        description="Unanswered Keepalives in a row after which we register again.",
    )
    version: Literal["2016", "2022"] = Field(
        default="2016",
        title="Standard version",
        description='GB/T 28181 edition: "2016" or "2022" (2022 adds the X-GB-ver header).',
    )
    time_zone: str | None = Field(
        default=None,
        title="Time zone",
        description="IANA zone of AlarmTime; none: the deployment's `timezone`.",
    )
    civil_code: str = Field(
        default="",
        title="Civil code",
        description="Administrative area code (2-8 digits) of our channels; empty: the first "
        "6 digits of device_id.",
    )
    alarm_types: dict[str, AlarmTypeEntry] = Field(
        default_factory=dict,
        title="Alarm types",
        description="Rule type → alarm code, replacing entries of the default table "
        "(docs/gb28181.md, 'Alarm mapping').",
    )
    max_alarm_age_s: float = Field(
        default=3600.0,
        gt=0,
        title="Oldest alarm",
        description="Seconds a queued alarm may be old when the superior is reachable again; "
        "older ones are dropped (counted and logged), not sent.",
    )
    catalog_page_size: int = Field(
        default=10,
        ge=1,
        le=100,
        title="Catalog page size",
        description="Items per Catalog response message (small pages stay under the UDP MTU).",
    )
    derive_camera_ids: bool = Field(
        default=False,
        title="Derive camera ids",
        description="Give a camera without gb28181_id a channel id derived from device_id and "
        "the camera id (docs/gb28181.md, 'Id plan'); off: every camera needs one when enabled.",
    )

    @field_validator("device_id", mode="before")
    @classmethod
    def _id_text(cls, v: Any) -> Any:
        return id_text(v)

    @field_validator("device_id")
    @classmethod
    def _our_id(cls, v: str) -> str:
        return validate_gb_id(v, {PLATFORM})

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("time_zone")
    @classmethod
    def _known_tz(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    @field_validator("civil_code")
    @classmethod
    def _civil(cls, v: str) -> str:
        if v and not _CIVIL_RE.match(v):
            raise ValueError(f"civil code {v!r} must be 2, 4, 6 or 8 digits")
        return v

    @field_validator("alarm_types")
    @classmethod
    def _known_rule_types(cls, v: dict[str, AlarmTypeEntry]) -> dict[str, AlarmTypeEntry]:
        known = known_rule_types()
        unknown = sorted(k for k in v if k not in known)
        if unknown:
            raise ValueError(
                f"unknown rule type(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return v

    @model_validator(mode="after")
    def _distinct_ids(self) -> Gb28181Settings:
        if self.device_id == self.superior.id:
            raise ValueError("device_id and superior.id must differ")
        return self

    def resolved_password(self) -> str:
        """The password from the config, else ``$GW_GB28181_PASSWORD``; RuntimeError if none."""
        value = self.password.get_secret_value() or os.environ.get(PASSWORD_ENV, "")
        if not value:
            raise RuntimeError(f"gb28181.password is empty and ${PASSWORD_ENV} is not set")
        return value

    def alarm_table(self) -> dict[str, AlarmCode]:
        """The default table with this deployment's ``alarm_types`` applied."""
        table = dict(DEFAULT_ALARM_TYPES)
        table.update({k: e.code() for k, e in self.alarm_types.items()})
        return table

    def effective_civil_code(self) -> str:
        return self.civil_code or self.device_id[:6]

    def effective_time_zone(self, deployment_zone: str = "Asia/Shanghai") -> str:
        return self.time_zone or deployment_zone

    def channel_id(self, camera_id: str, gb28181_id: str | None) -> str | None:
        """A camera's channel id: its ``gb28181_id``, else a derived one if allowed, else None."""
        if gb28181_id:
            return gb28181_id
        return camera_channel_id(self.device_id, camera_id) if self.derive_camera_ids else None


def known_rule_types() -> set[str]:
    """Rule types the alarm table may name: the registry's and the default table's."""
    from gridwatch.rules.registry import RULE_TYPES

    return set(RULE_TYPES) | set(DEFAULT_ALARM_TYPES)


Issue = tuple[tuple[str | int, ...], str]


def gb28181_reference_issues(data: dict[str, Any]) -> list[Issue]:
    """Checks across the raw document the models cannot make alone: camera gb28181_ids unique
    and distinct from the platform ids, every camera with one when ``gb28181.enabled`` (unless
    ids are derived), and no two derived ids (grids, cameras) colliding with each other or a
    configured one. Returns (path, message) pairs for the config loader.
    """
    out: list[Issue] = []
    section = data.get("gb28181")
    section = section if isinstance(section, dict) else None
    device_id = id_text(section.get("device_id")) if section else None
    device_id = device_id if _is_id(device_id, {PLATFORM}) else None
    superior = section.get("superior") if section else None
    superior_id = id_text(superior.get("id")) if isinstance(superior, dict) else None
    enabled = bool(section and section.get("enabled") is True)
    derive = bool(section and section.get("derive_camera_ids") is True)
    cameras = data.get("cameras")
    seen: dict[str, int] = {}
    plan: list[tuple[str, str]] = []
    for ci, cam in enumerate(cameras if isinstance(cameras, list) else []):
        if not isinstance(cam, dict):
            continue
        gid = id_text(cam.get("gb28181_id"))
        if isinstance(gid, str) and gid:
            if gid in seen:
                out.append(
                    (
                        ("cameras", ci, "gb28181_id"),
                        f"duplicate gb28181_id {gid!r} (also cameras[{seen[gid]}])",
                    )
                )
            else:
                seen[gid] = ci
            if gid in (device_id, superior_id):
                out.append(
                    (
                        ("cameras", ci, "gb28181_id"),
                        f"gb28181_id {gid!r} is a platform id (gb28181.device_id/superior.id)",
                    )
                )
            plan.append((f"cameras[{ci}]", gid))
        elif enabled and not derive:
            out.append(
                (
                    ("cameras", ci, "id"),
                    "gb28181.enabled needs a gb28181_id (20 digits, type 131/132) on every "
                    "camera, or gb28181.derive_camera_ids: true",
                )
            )
        elif derive and device_id and isinstance(cam.get("id"), str):
            plan.append((f"cameras[{ci}] (derived)", camera_channel_id(device_id, cam["id"])))
    if device_id:
        grids = data.get("grids")
        for grid in grids if isinstance(grids, list) else []:
            g = grid.get("id") if isinstance(grid, dict) else None
            if isinstance(g, str):
                plan.append((f"grid {g} (215)", grid_group_id(device_id, g)))
                plan.append((f"grid {g} (216)", grid_org_id(device_id, g)))
        for gb_id, first, second in id_plan_collisions(plan):
            if "derived" in first + second or "grid" in first + second:
                out.append(
                    (
                        ("gb28181", "device_id"),
                        f"id plan collision: {first} and {second} both get {gb_id}; rename a "
                        "grid/camera or set gb28181_id explicitly",
                    )
                )
    return out


def id_text(value: Any) -> Any:
    """An id written without quotes is a YAML integer: take its digits (ids never start with
    0: the first two digits are a province code).

    >>> id_text(34020000002000000001), id_text("x")
    ('34020000002000000001', 'x')
    """
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _is_id(value: Any, types: set[int]) -> bool:
    try:
        validate_gb_id(value, types)
    except (ValueError, TypeError):
        return False
    return True


CAMERA_ID_TYPES = frozenset({CAMERA, CHANNEL})
"""Type codes a camera's ``gb28181_id`` may have."""


def validate_camera_gb_id(value: str | None) -> str | None:
    """The per-camera ``gb28181_id`` check (:class:`gridwatch.config.models.CameraConfig`)."""
    return None if value is None else validate_gb_id(value, set(CAMERA_ID_TYPES))


__all__: Sequence[str] = (
    "PASSWORD_ENV",
    "AlarmTypeEntry",
    "Gb28181Settings",
    "SuperiorSettings",
    "gb28181_reference_issues",
    "id_text",
    "known_rule_types",
    "validate_camera_gb_id",
)
