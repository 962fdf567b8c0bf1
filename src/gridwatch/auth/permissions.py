"""Who may do what on NATS: the allow and deny lists that enforce grid isolation and least
privilege, one :class:`Rules` per identity.

They live apart from the configuration file (:mod:`gridwatch.auth.natsconf` writes them into
nats-server's ``users:`` section) and from the matrix that documents them
(:mod:`gridwatch.auth.permission_matrix`), so both read the one definition. Permissions are
allow-lists (plus a few denies that carve exceptions out of them):

* **responder / grid_leader** of grid G: subscribe to G's alerts and case events and to their
  own reply inbox (``_INBOX.<user>.>``: nobody reads anybody else's replies); publish case
  commands, snapshot and clip requests *under their own name* (``gw.v1.case-cmd.G.<user>``,
  which is how the case service knows who is asking); read GW_ALERTS / GW_CASES through
  JetStream only with *named* consumers whose filter is inside G (the create API subject
  ``$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>`` carries the filter; the bare
  ``...CREATE.<stream>``, whose filter and name are in the body, is refused, and so is every
  name of a service's durable consumer: nobody can re-create ``gw_case_opener`` with their
  grid's filter); the info of their own consumers (to see that they still exist) but never of
  a service's; no stream info (its ``subjects_filter`` would list every grid's subjects), no
  account info; register their own Web Push subscriptions. Nothing else.
* **operator**: the same for every grid (alerts and cases, not the service subjects: they cannot
  join the case, snapshot or clip services' queue groups), plus direct reads of
  GW_ALERTS/GW_CASES messages. The reserved grid ``_all`` is refused in snapshot and clip
  requests (a snapshot or clip is always asked for, and audited under, its real grid); case
  commands may use it to list or look up cases (the case service refuses changes through it).
* **service** with a ``service`` kind (worker, cases, snapshots, notifier, console, gb28181):
  only the subjects and JetStream API calls that process makes (see :data:`SERVICE_RULES` and
  docs/security.md). Requests they answer are replied to through ``allow_responses``, not a
  publish right on everybody's inbox (the snapshots identity, which also answers clip requests
  in chunks, may send up to :data:`~gridwatch.bus.rpc.MAX_CHUNKS` messages to a reply subject
  within :data:`~gridwatch.bus.rpc.REPLY_WINDOW_S` seconds of the request). Only the console
  and the snapshot service may publish audit records; nobody but an admin may delete or purge
  GW_AUDIT.
* **statistics** (``GW_STATS``, :mod:`gridwatch.stats`): workers publish
  ``gw.v1.stats.<grid>.<camera>.<period>`` (which cameras: their leases decide, not NATS) and
  read the stream back for the rollups; the console reads it; people read it with named
  consumers inside their grid (operators: every grid) and never publish.
* **admin**, and a **service** without a kind (deprecated): unrestricted.

:func:`~gridwatch.auth.permission_matrix.permission_matrix` evaluates these rules (with NATS's
subject matching) on one concrete subject per capability; ``docs/security.md`` is rendered from
it and ``tests/security/test_nats_permissions.py`` checks every cell against a real
nats-server.

>>> rules = rules_for(UserConfig(name="aux-li", role="responder", grid="grid-a",
...                              password_hash="$2b$04$" + "a" * 53))
>>> rules.sub_allow
['gw.v1.alerts.grid-a.>', 'gw.v1.cases.grid-a.>', '_INBOX.aux-li.>']
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gridwatch.alerts.subjects import ALERTS_PREFIX, ALERTS_STREAM, HEALTH_PREFIX, SNAPSHOT_BUCKET
from gridwatch.auth.models import SERVICE_KINDS, UserConfig
from gridwatch.auth.subjects import (
    ALL_GRIDS,
    AUDIT_PREFIX,
    AUDIT_STREAM,
    CASE_CMD_PREFIX,
    CASE_OPENER_DURABLE,
    CASES_KV,
    CASES_PREFIX,
    CASES_STREAM,
    NOTIFIER_CASES_DURABLE,
    NOTIFIER_DURABLE,
    NOTIFY_SENT_KV,
    PUSH_SUBS_KV,
    SERVICE_CONSUMERS,
    SNAPSHOT_REQ_PREFIX,
    inbox_prefix,
)
from gridwatch.bus.names import (
    CAMERA_SECRETS_KV,
    CAMERAS_KV,
    CLIP_BUCKET,
    CLIP_REQ_PREFIX,
    GB28181_DURABLE,
    GB28181_KV,
    GB28181_SENT_KV,
    LEASES_KV,
    STATS_PREFIX,
    STATS_STREAM,
    WORKERS_KV,
)
from gridwatch.bus.rpc import MAX_CHUNKS, REPLY_WINDOW_S

JS_API = "$JS.API"
READ_STREAMS = (ALERTS_STREAM, CASES_STREAM)
OBJ_SNAPSHOTS = f"OBJ_{SNAPSHOT_BUCKET}"
OBJ_CLIPS = f"OBJ_{CLIP_BUCKET}"


@dataclass
class Rules:
    """Allow and deny lists of one identity (None everywhere: unrestricted)."""

    pub_allow: list[str] = field(default_factory=list)
    pub_deny: list[str] = field(default_factory=list)
    sub_allow: list[str] = field(default_factory=list)
    sub_deny: list[str] = field(default_factory=list)
    allow_responses: bool = False
    responses_max: int = 1
    """Messages one request's reply subject may take (more than 1: chunked replies)."""
    responses_expires_s: int = 0
    """How long after the request the reply subject stays open (0: nats-server's default,
    2 minutes)."""

    def extend(self, other: Rules) -> None:
        for attr in ("pub_allow", "pub_deny", "sub_allow", "sub_deny"):
            mine: list[str] = getattr(self, attr)
            mine += [s for s in getattr(other, attr) if s not in mine]
        self.allow_responses = self.allow_responses or other.allow_responses
        self.responses_max = max(self.responses_max, other.responses_max)
        self.responses_expires_s = max(self.responses_expires_s, other.responses_expires_s)

    def block(self) -> dict[str, Any]:
        def part(allow: list[str], deny: list[str]) -> dict[str, list[str]]:
            out = {"allow": allow}
            if deny:
                out["deny"] = deny
            return out

        out: dict[str, Any] = {
            "publish": part(self.pub_allow, self.pub_deny),
            "subscribe": part(self.sub_allow, self.sub_deny),
        }
        if self.allow_responses and (self.responses_max > 1 or self.responses_expires_s):
            out["allow_responses"] = {"max": self.responses_max}
            if self.responses_expires_s:
                out["allow_responses"]["expires"] = f"{self.responses_expires_s}s"
        elif self.allow_responses:
            out["allow_responses"] = True
        return out


# -- building blocks -------------------------------------------------------------------------


def _stream_admin(stream: str) -> list[str]:
    return [f"{JS_API}.STREAM.{op}.{stream}" for op in ("INFO", "CREATE", "UPDATE")]


def _stream_read(stream: str) -> list[str]:
    return [
        f"{JS_API}.STREAM.MSG.GET.{stream}",
        f"{JS_API}.DIRECT.GET.{stream}",
        f"{JS_API}.DIRECT.GET.{stream}.>",
    ]


def _ephemeral(stream: str) -> list[str]:
    """Consumers of any kind on ``stream`` (services only: the reserved durables stay denied)."""
    return [
        f"{JS_API}.CONSUMER.CREATE.{stream}",
        f"{JS_API}.CONSUMER.CREATE.{stream}.>",
        f"{JS_API}.CONSUMER.INFO.{stream}.*",
        f"$JS.FC.{stream}.>",
    ]


def _kv(bucket: str, *, write: bool = True) -> list[str]:
    """A KV bucket: create/converge, read, watch, and (``write``) put/delete."""
    stream = f"KV_{bucket}"
    out = [*_stream_admin(stream), *_stream_read(stream), *_ephemeral(stream)]
    if write:
        out += [f"$KV.{bucket}.>", f"{JS_API}.STREAM.PURGE.{stream}"]
    return out


def _durable(stream: str, name: str, filter_prefix: str) -> list[str]:
    """A service's own durable pull consumer: create/update, info, pull, ack."""
    return [
        f"{JS_API}.CONSUMER.CREATE.{stream}.{name}",
        f"{JS_API}.CONSUMER.CREATE.{stream}.{name}.{filter_prefix}.>",
        f"{JS_API}.CONSUMER.DURABLE.CREATE.{stream}.{name}",
        f"{JS_API}.CONSUMER.INFO.{stream}.{name}",
        f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{name}",
        f"$JS.ACK.{stream}.{name}.>",
    ]


def _reserved_denies(owner_kinds: Iterable[str] = ()) -> list[str]:
    """Deny every API call that names a service durable not owned by one of ``owner_kinds``."""
    kinds = set(owner_kinds)
    out: list[str] = []
    for name, (_stream, kind) in SERVICE_CONSUMERS.items():
        if kind in kinds:
            continue
        out += [
            f"{JS_API}.CONSUMER.*.*.{name}",  # CREATE, INFO, DELETE, PAUSE ...
            f"{JS_API}.CONSUMER.*.*.{name}.>",  # CREATE with a filter
            f"{JS_API}.CONSUMER.*.*.*.{name}",  # MSG.NEXT, DURABLE.CREATE, LEADER.STEPDOWN
            f"$JS.ACK.*.{name}.>",
        ]
    return out


def _person_reads(prefixes: dict[str, str], user: str) -> list[str]:
    """Named consumers filtered inside ``prefixes`` (stream -> subject prefix), the info of
    (their own) consumers, flow control, and their own Web Push subscriptions."""
    out: list[str] = []
    for stream, prefix in prefixes.items():
        out += [
            f"{JS_API}.CONSUMER.CREATE.{stream}.*.{prefix}.>",
            f"{JS_API}.CONSUMER.INFO.{stream}.*",
            f"$JS.FC.{stream}.>",
        ]
    out.append(f"$KV.{PUSH_SUBS_KV}.{user}.>")
    return out


SERVICE_RULES: dict[str, Rules] = {
    "worker": Rules(
        pub_allow=[
            f"{ALERTS_PREFIX}.>",
            f"{HEALTH_PREFIX}.>",
            *_stream_admin(ALERTS_STREAM),
            *_stream_admin(OBJ_SNAPSHOTS),
            *_stream_read(OBJ_SNAPSHOTS),
            f"{JS_API}.STREAM.PURGE.{OBJ_SNAPSHOTS}",  # an overwritten object's old chunks
            f"$O.{SNAPSHOT_BUCKET}.>",
            # evidence clips (issue 14): written by the worker that saw the incident
            *_stream_admin(OBJ_CLIPS),
            *_stream_read(OBJ_CLIPS),
            f"{JS_API}.STREAM.PURGE.{OBJ_CLIPS}",
            f"$O.{CLIP_BUCKET}.>",
            # the registry is read (and its buckets made) only: cameras are changed by people
            *_kv(CAMERAS_KV, write=False),
            *_kv(CAMERA_SECRETS_KV, write=False),  # the cameras' URLs with credentials
            *_kv(LEASES_KV),
            *_kv(WORKERS_KV),
            # people-flow statistics: minutes, and rollups made from the records read back
            f"{STATS_PREFIX}.>",
            *_stream_admin(STATS_STREAM),
            *_stream_read(STATS_STREAM),
            *_ephemeral(STATS_STREAM),
        ],
    ),
    "cases": Rules(
        pub_allow=[
            f"{CASES_PREFIX}.>",
            *_stream_admin(CASES_STREAM),
            *_stream_read(CASES_STREAM),
            *_ephemeral(CASES_STREAM),
            *_kv(CASES_KV),
            *_durable(ALERTS_STREAM, CASE_OPENER_DURABLE, ALERTS_PREFIX),
        ],
        sub_allow=[f"{CASE_CMD_PREFIX}.>"],
        allow_responses=True,
    ),
    "snapshots": Rules(
        pub_allow=[
            f"{AUDIT_PREFIX}.>",
            f"{JS_API}.STREAM.NAMES",  # nats.py's object get looks the chunks' stream up
            *_stream_admin(AUDIT_STREAM),  # ensures GW_AUDIT before serving full views
            f"{JS_API}.STREAM.INFO.{OBJ_SNAPSHOTS}",
            *_stream_read(OBJ_SNAPSHOTS),
            *_ephemeral(OBJ_SNAPSHOTS),
            # the clip service (same process): reads the workers' clips and caches the
            # re-encoded variants beside them (<camera>/<alert>.<variant>.mp4)
            f"{JS_API}.STREAM.INFO.{OBJ_CLIPS}",
            *_stream_read(OBJ_CLIPS),
            *_ephemeral(OBJ_CLIPS),
            f"{JS_API}.STREAM.PURGE.{OBJ_CLIPS}",  # an overwritten variant's old chunks
            f"$O.{CLIP_BUCKET}.>",
        ],
        sub_allow=[f"{SNAPSHOT_REQ_PREFIX}.>", f"{CLIP_REQ_PREFIX}.>"],
        allow_responses=True,
        # clips answer in chunks (bus.rpc), after a re-encode that may take minutes
        responses_max=MAX_CHUNKS,
        responses_expires_s=REPLY_WINDOW_S,
    ),
    "notifier": Rules(
        pub_allow=[
            *_durable(ALERTS_STREAM, NOTIFIER_DURABLE, ALERTS_PREFIX),
            *_durable(CASES_STREAM, NOTIFIER_CASES_DURABLE, CASES_PREFIX),
            *_kv(NOTIFY_SENT_KV),
            *_kv(PUSH_SUBS_KV),
        ],
    ),
    "console": Rules(
        pub_allow=[
            f"{CASE_CMD_PREFIX}.*",
            f"{SNAPSHOT_REQ_PREFIX}.*.*",
            f"{CLIP_REQ_PREFIX}.*.*",  # for its logged-in users (case export), as snapshots
            f"{AUDIT_PREFIX}.>",
            *_stream_admin(AUDIT_STREAM),
            *_stream_read(AUDIT_STREAM),
            *_ephemeral(AUDIT_STREAM),
            *_stream_read(ALERTS_STREAM),
            *_person_reads({ALERTS_STREAM: ALERTS_PREFIX}, "*")[:-1],  # named, filter in subject
            *_stream_read(CASES_STREAM),
            *_ephemeral(CASES_STREAM),
            *_stream_read(STATS_STREAM),  # statistics pages: read only
            *_person_reads({STATS_STREAM: STATS_PREFIX}, "*")[:-1],
            f"{JS_API}.STREAM.INFO.{STATS_STREAM}",
            # looks at the streams it reads at start (their owners make them; see console.app)
            *(f"{JS_API}.STREAM.INFO.{s}" for s in (ALERTS_STREAM, CASES_STREAM, f"KV_{CASES_KV}")),
            *_kv(PUSH_SUBS_KV),
            *_kv(CAMERAS_KV, write=False),  # the camera list, read only
            *_kv(CAMERA_SECRETS_KV, write=False),  # the live view connects to the cameras
            *_kv(LEASES_KV, write=False),
            *_kv(WORKERS_KV, write=False),
            # the GB/T 28181 cascade's status on the cameras page: read only, no create
            f"{JS_API}.STREAM.INFO.KV_{GB28181_KV}",
            *_stream_read(f"KV_{GB28181_KV}"),
        ],
        sub_allow=[f"{HEALTH_PREFIX}.*"],
    ),
    # the GB/T 28181 cascade (issue 17): its own durable on GW_ALERTS, its two buckets, and
    # camera health (channel status ON/OFF); nothing it could forge or read beyond that
    "gb28181": Rules(
        pub_allow=[
            *_durable(ALERTS_STREAM, GB28181_DURABLE, ALERTS_PREFIX),
            *_kv(GB28181_KV),
            *_kv(GB28181_SENT_KV),
        ],
        sub_allow=[f"{HEALTH_PREFIX}.*"],
    ),
}
"""What each service kind may do, besides its own inbox (see the module docstring)."""
assert set(SERVICE_RULES) == set(SERVICE_KINDS)
assert all(kind in SERVICE_RULES for _s, kind in SERVICE_CONSUMERS.values())


def rules_for(user: UserConfig) -> Rules | None:
    """The allow/deny lists of ``user``; None means unrestricted (admin, kind-less service)."""
    name = user.name
    inbox = f"{inbox_prefix(name)}.>"
    if user.role == "admin" or (user.role == "service" and not user.service_kinds):
        return None
    if user.role == "service":
        rules = Rules(sub_allow=[inbox])
        for kind in user.service_kinds:
            rules.extend(SERVICE_RULES[kind])
        rules.pub_deny = _reserved_denies(user.service_kinds)
        return rules
    if user.role == "operator":
        return Rules(
            pub_allow=[
                f"{CASE_CMD_PREFIX}.*.{name}",
                f"{SNAPSHOT_REQ_PREFIX}.*.{name}",
                f"{CLIP_REQ_PREFIX}.*.{name}",
                *_person_reads(
                    {
                        ALERTS_STREAM: ALERTS_PREFIX,
                        CASES_STREAM: CASES_PREFIX,
                        STATS_STREAM: STATS_PREFIX,
                    },
                    name,
                ),
                f"{JS_API}.STREAM.MSG.GET.{ALERTS_STREAM}",
                f"{JS_API}.STREAM.MSG.GET.{CASES_STREAM}",
            ],
            pub_deny=[
                f"{SNAPSHOT_REQ_PREFIX}.{ALL_GRIDS}.>",
                f"{CLIP_REQ_PREFIX}.{ALL_GRIDS}.>",
                *_reserved_denies(),
            ],
            sub_allow=[f"{ALERTS_PREFIX}.>", f"{CASES_PREFIX}.>", inbox],
        )
    grid = user.grid
    assert grid is not None  # validated: grid roles have a grid
    return Rules(
        pub_allow=[
            f"{CASE_CMD_PREFIX}.{grid}.{name}",
            f"{SNAPSHOT_REQ_PREFIX}.{grid}.{name}",
            f"{CLIP_REQ_PREFIX}.{grid}.{name}",
            *_person_reads(
                {
                    ALERTS_STREAM: f"{ALERTS_PREFIX}.{grid}",
                    CASES_STREAM: f"{CASES_PREFIX}.{grid}",
                    STATS_STREAM: f"{STATS_PREFIX}.{grid}",
                },
                name,
            ),
        ],
        pub_deny=_reserved_denies(),
        sub_allow=[f"{ALERTS_PREFIX}.{grid}.>", f"{CASES_PREFIX}.{grid}.>", inbox],
    )


def permissions_for(user: UserConfig) -> dict[str, Any] | None:
    """The nats-server ``permissions`` block of ``user``; None means unrestricted."""
    rules = rules_for(user)
    return None if rules is None else rules.block()
