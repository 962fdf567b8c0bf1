"""Generate a nats-server configuration whose permissions enforce grid isolation and least
privilege.

One NATS user per configured user, logging in with the same name and password (the config's
bcrypt hash is handed to nats-server as is: it accepts bcrypt). Permissions are allow-lists
(plus a few denies that carve exceptions out of them):

* **responder / grid_leader** of grid G: subscribe to G's alerts and case events and to their
  own reply inbox (``_INBOX.<user>.>``: nobody reads anybody else's replies); publish case
  commands and snapshot requests *under their own name* (``gw.v1.case-cmd.G.<user>``, which is
  how the case service knows who is asking); read GW_ALERTS / GW_CASES through JetStream only
  with *named* consumers whose filter is inside G (the create API subject
  ``$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>`` carries the filter; the bare
  ``...CREATE.<stream>``, whose filter and name are in the body, is refused, and so is every
  name of a service's durable consumer: nobody can re-create ``gw_case_opener`` with their
  grid's filter); the info of their own consumers (to see that they still exist) but never of
  a service's; no stream info (its ``subjects_filter`` would list every grid's subjects), no
  account info; register their own Web Push subscriptions. Nothing else.
* **operator**: the same for every grid (alerts and cases, not the service subjects: they cannot
  join the case or snapshot services' queue groups), plus direct reads of GW_ALERTS/GW_CASES
  messages. The reserved grid ``_all`` is refused in snapshot requests (a snapshot is always
  asked for, and audited under, its real grid); case commands may use it to list or look up
  cases (the case service refuses changes through it).
* **service** with a ``service`` kind (worker, cases, snapshots, notifier, console): only the
  subjects and JetStream API calls that process makes (see :data:`SERVICE_RULES` and
  docs/security.md). Requests they answer are replied to through ``allow_responses``, not a
  publish right on everybody's inbox. Only the console and the snapshot service may publish
  audit records; nobody but an admin may delete or purge GW_AUDIT.
* **admin**, and a **service** without a kind (deprecated): unrestricted.

:func:`permission_matrix` evaluates these rules (with NATS's subject matching) on one concrete
subject per capability; ``docs/security.md`` is rendered from it and
``tests/security/test_nats_permissions.py`` checks every cell against a real nats-server.

The output is JSON, which nats-server's configuration parser reads as is. With ``tls`` options
the client port (and a cluster's routes) require TLS (:mod:`gridwatch.auth.certs` makes the
certificates).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

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
from gridwatch.bus.names import CAMERA_SECRETS_KV, CAMERAS_KV, LEASES_KV, WORKERS_KV
from gridwatch.config import GridwatchConfig

JS_API = "$JS.API"
READ_STREAMS = (ALERTS_STREAM, CASES_STREAM)
OBJ_SNAPSHOTS = f"OBJ_{SNAPSHOT_BUCKET}"


@dataclass
class Rules:
    """Allow and deny lists of one identity (None everywhere: unrestricted)."""

    pub_allow: list[str] = field(default_factory=list)
    pub_deny: list[str] = field(default_factory=list)
    sub_allow: list[str] = field(default_factory=list)
    sub_deny: list[str] = field(default_factory=list)
    allow_responses: bool = False

    def extend(self, other: Rules) -> None:
        for attr in ("pub_allow", "pub_deny", "sub_allow", "sub_deny"):
            mine: list[str] = getattr(self, attr)
            mine += [s for s in getattr(other, attr) if s not in mine]
        self.allow_responses = self.allow_responses or other.allow_responses

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
        if self.allow_responses:
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
            # the registry is read (and its buckets made) only: cameras are changed by people
            *_kv(CAMERAS_KV, write=False),
            *_kv(CAMERA_SECRETS_KV, write=False),  # the cameras' URLs with credentials
            *_kv(LEASES_KV),
            *_kv(WORKERS_KV),
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
        ],
        sub_allow=[f"{SNAPSHOT_REQ_PREFIX}.>"],
        allow_responses=True,
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
            f"{AUDIT_PREFIX}.>",
            *_stream_admin(AUDIT_STREAM),
            *_stream_read(AUDIT_STREAM),
            *_ephemeral(AUDIT_STREAM),
            *_stream_read(ALERTS_STREAM),
            *_person_reads({ALERTS_STREAM: ALERTS_PREFIX}, "*")[:-1],  # named, filter in subject
            *_stream_read(CASES_STREAM),
            *_ephemeral(CASES_STREAM),
            *_kv(PUSH_SUBS_KV),
            *_kv(CAMERAS_KV, write=False),  # the camera list, read only
            *_kv(CAMERA_SECRETS_KV, write=False),  # the live view connects to the cameras
            *_kv(LEASES_KV, write=False),
            *_kv(WORKERS_KV, write=False),
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
                *_person_reads({ALERTS_STREAM: ALERTS_PREFIX, CASES_STREAM: CASES_PREFIX}, name),
                f"{JS_API}.STREAM.MSG.GET.{ALERTS_STREAM}",
                f"{JS_API}.STREAM.MSG.GET.{CASES_STREAM}",
            ],
            pub_deny=[f"{SNAPSHOT_REQ_PREFIX}.{ALL_GRIDS}.>", *_reserved_denies()],
            sub_allow=[f"{ALERTS_PREFIX}.>", f"{CASES_PREFIX}.>", inbox],
        )
    grid = user.grid
    assert grid is not None  # validated: grid roles have a grid
    return Rules(
        pub_allow=[
            f"{CASE_CMD_PREFIX}.{grid}.{name}",
            f"{SNAPSHOT_REQ_PREFIX}.{grid}.{name}",
            *_person_reads(
                {ALERTS_STREAM: f"{ALERTS_PREFIX}.{grid}", CASES_STREAM: f"{CASES_PREFIX}.{grid}"},
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


def security_warnings(config: GridwatchConfig) -> list[str]:
    """What ``gridwatch config check`` warns about: unrestricted service accounts."""
    return [
        f"user {u.name!r}: role service without 'service: worker|cases|snapshots|notifier|"
        "console' is unrestricted on NATS (deprecated); give each process its own account"
        for u in config.users
        if u.role == "service" and not u.service_kinds
    ]


# -- TLS ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of the server (or route) certificate, its key and the CA that signed them."""

    cert: str
    key: str
    ca: str

    def block(self, *, verify: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"cert_file": self.cert, "key_file": self.key, "ca_file": self.ca}
        if verify:
            out["verify"] = True  # the peer must show a certificate of the same CA
        out["timeout"] = 5
        return out


# -- the configuration ---------------------------------------------------------------------------


def _listen_from_url(url: str) -> str:
    first = url.split(",")[0].strip()
    parsed = urlparse(first)
    return f"{parsed.hostname or '0.0.0.0'}:{parsed.port or 4222}"


def build_nats_config(
    config: GridwatchConfig,
    *,
    store_dir: str | None = None,
    listen: str | None = None,
    monitor: str | None = None,
    server_name: str = "gridwatch",
    tls: TlsFiles | None = None,
    cluster_name: str | None = None,
    cluster_listen: str | None = None,
    routes: Sequence[str] = (),
    route_tls: TlsFiles | None = None,
    no_advertise: bool = False,
) -> dict[str, Any]:
    """The nats-server configuration (a dict, see :func:`render_nats_config`).

    ``tls``: clients must connect with TLS. ``cluster_name``/``cluster_listen``/``routes``: a
    cluster node (routes as ``nats://host:port``; with ``route_tls`` they are ``tls://`` and
    both ends verify each other's certificate against the CA). ``no_advertise``: the node does
    not tell clients the other nodes' addresses (clients list every node themselves; gossiped
    addresses are IPs, which the nodes' TLS certificates do not name)."""
    users: list[dict[str, Any]] = []
    for u in config.users:
        entry: dict[str, Any] = {"user": u.name, "password": u.password_hash}
        perms = permissions_for(u)
        if perms is not None:
            entry["permissions"] = perms
        users.append(entry)
    out: dict[str, Any] = {
        "server_name": server_name,
        "listen": listen or _listen_from_url(config.nats.url),
        # no store_dir: the server's -sd flag (or its default) decides
        "jetstream": {"store_dir": store_dir} if store_dir else {},
    }
    if monitor:
        out["http"] = monitor
    if tls is not None:
        out["tls"] = tls.block()
    if users:
        out["authorization"] = {"users": users}
    if cluster_name or cluster_listen or routes:
        cluster: dict[str, Any] = {
            "name": cluster_name or "gridwatch",
            "listen": cluster_listen or "0.0.0.0:6222",
        }
        if route_tls is not None:
            cluster["tls"] = route_tls.block(verify=True)
        if routes:
            scheme = "tls" if route_tls is not None else "nats"
            cluster["routes"] = [f"{scheme}://{r.split('://', 1)[-1]}" for r in routes]
        if no_advertise:
            cluster["no_advertise"] = True
        out["cluster"] = cluster
    return out


def render_nats_config(conf: dict[str, Any]) -> str:
    return json.dumps(conf, indent=2, ensure_ascii=False) + "\n"


def write_nats_config(config: GridwatchConfig, out: str | Path, **options: Any) -> Path:
    """Write :func:`build_nats_config` to ``out`` (mode 0600: it holds password hashes)."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render_nats_config(build_nats_config(config, **options))
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)
    return path


def people(
    config: GridwatchConfig, grid: str | None = None, roles: Sequence[str] = ()
) -> list[UserConfig]:
    """Users of ``grid`` (and all-grid roles when grid is None) with one of ``roles``."""
    return [
        u
        for u in config.users
        if (not roles or u.role in roles) and (grid is None or u.grid == grid)
    ]


# -- the permission matrix -----------------------------------------------------------------------


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` one token, ``>`` one or more trailing tokens."""
    p, s = pattern.split("."), subject.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(s) > i
        if i >= len(s) or (tok != "*" and tok != s[i]):
            return False
    return len(p) == len(s)


def allowed(rules: Rules | None, action: str, subject: str) -> bool:
    """Whether ``rules`` let ``action`` ("pub" or "sub") happen on the concrete ``subject``."""
    if rules is None:
        return True
    allow = rules.pub_allow if action == "pub" else rules.sub_allow
    deny = rules.pub_deny if action == "pub" else rules.sub_deny
    return any(subject_matches(p, subject) for p in allow) and not any(
        subject_matches(p, subject) for p in deny
    )


@dataclass(frozen=True)
class Capability:
    """One row of the matrix: what is tried, as which NATS action, on which subject.

    The subject template may name ``{me}`` (the identity), ``{own}`` (their grid; grid A for
    identities of every grid), ``{other}`` (another grid) and ``{someone}`` (another person)."""

    what: str
    action: str  # "pub" or "sub"
    template: str

    def subject(self, me: str, own: str, other: str, someone: str) -> str:
        return self.template.format(me=me, own=own, other=other, someone=someone)


C = Capability
CAPABILITIES: tuple[Capability, ...] = (
    C("read own grid's alerts (core)", "sub", f"{ALERTS_PREFIX}.{{own}}.cam-1.crowding"),
    C("read another grid's alerts (core)", "sub", f"{ALERTS_PREFIX}.{{other}}.cam-1.crowding"),
    C("read every grid's alerts (core)", "sub", f"{ALERTS_PREFIX}.>"),
    C("read own grid's case events (core)", "sub", f"{CASES_PREFIX}.{{own}}.c1"),
    C("read everything under gw.v1.>", "sub", "gw.v1.>"),
    C("join the case service's queue (commands)", "sub", f"{CASE_CMD_PREFIX}.>"),
    C("join the snapshot service's queue", "sub", f"{SNAPSHOT_REQ_PREFIX}.>"),
    C("read audit records (core)", "sub", f"{AUDIT_PREFIX}.>"),
    C("read camera health", "sub", f"{HEALTH_PREFIX}.cam-1"),
    C("read own reply inbox", "sub", "_INBOX.{me}.x"),
    C("read another user's replies", "sub", "_INBOX.{someone}.x"),
    C("case command, own grid, own name", "pub", f"{CASE_CMD_PREFIX}.{{own}}.{{me}}"),
    C("case command, another grid", "pub", f"{CASE_CMD_PREFIX}.{{other}}.{{me}}"),
    C("case command under another's name", "pub", f"{CASE_CMD_PREFIX}.{{own}}.{{someone}}"),
    C("case command via the reserved grid _all", "pub", f"{CASE_CMD_PREFIX}.{ALL_GRIDS}.{{me}}"),
    C("case command for a user (service form)", "pub", f"{CASE_CMD_PREFIX}.{{own}}"),
    C("snapshot request, own grid", "pub", f"{SNAPSHOT_REQ_PREFIX}.{{own}}.{{me}}"),
    C("snapshot request, another grid", "pub", f"{SNAPSHOT_REQ_PREFIX}.{{other}}.{{me}}"),
    C("snapshot request via _all", "pub", f"{SNAPSHOT_REQ_PREFIX}.{ALL_GRIDS}.{{me}}"),
    C("publish (forge) an alert", "pub", f"{ALERTS_PREFIX}.{{own}}.cam-1.crowding"),
    C("publish (forge) a case event", "pub", f"{CASES_PREFIX}.{{own}}.c1"),
    C("publish an audit record", "pub", f"{AUDIT_PREFIX}.snapshot.{{own}}"),
    C("publish camera health", "pub", f"{HEALTH_PREFIX}.cam-1"),
    C("JetStream account info", "pub", f"{JS_API}.INFO"),
    C("stream info GW_ALERTS", "pub", f"{JS_API}.STREAM.INFO.{ALERTS_STREAM}"),
    C("stream info GW_CASES", "pub", f"{JS_API}.STREAM.INFO.{CASES_STREAM}"),
    C("stream info KV_gw_push_subs", "pub", f"{JS_API}.STREAM.INFO.KV_{PUSH_SUBS_KV}"),
    C("list streams", "pub", f"{JS_API}.STREAM.LIST"),
    C("delete GW_AUDIT", "pub", f"{JS_API}.STREAM.DELETE.{AUDIT_STREAM}"),
    C("purge GW_AUDIT", "pub", f"{JS_API}.STREAM.PURGE.{AUDIT_STREAM}"),
    C("delete an audit record", "pub", f"{JS_API}.STREAM.MSG.DELETE.{AUDIT_STREAM}"),
    C("purge GW_ALERTS", "pub", f"{JS_API}.STREAM.PURGE.{ALERTS_STREAM}"),
    C("change GW_ALERTS (retention)", "pub", f"{JS_API}.STREAM.UPDATE.{ALERTS_STREAM}"),
    C(
        "consumer filter in the body (bare create)",
        "pub",
        f"{JS_API}.CONSUMER.CREATE.{ALERTS_STREAM}",
    ),
    C(
        "named consumer, own grid's alerts",
        "pub",
        f"{JS_API}.CONSUMER.CREATE.{ALERTS_STREAM}.mine.{ALERTS_PREFIX}.{{own}}.>",
    ),
    C(
        "named consumer, own grid's cases",
        "pub",
        f"{JS_API}.CONSUMER.CREATE.{CASES_STREAM}.mine.{CASES_PREFIX}.{{own}}.>",
    ),
    C(
        "named consumer, another grid's alerts",
        "pub",
        f"{JS_API}.CONSUMER.CREATE.{ALERTS_STREAM}.mine.{ALERTS_PREFIX}.{{other}}.>",
    ),
    C(
        "named consumer, every grid's alerts",
        "pub",
        f"{JS_API}.CONSUMER.CREATE.{ALERTS_STREAM}.mine.{ALERTS_PREFIX}.>",
    ),
    C(
        "legacy durable create",
        "pub",
        f"{JS_API}.CONSUMER.DURABLE.CREATE.{ALERTS_STREAM}.mine",
    ),
    C("info of own consumer", "pub", f"{JS_API}.CONSUMER.INFO.{ALERTS_STREAM}.mine"),
    C("list consumers", "pub", f"{JS_API}.CONSUMER.LIST.{ALERTS_STREAM}"),
    C("delete a consumer", "pub", f"{JS_API}.CONSUMER.DELETE.{ALERTS_STREAM}.mine"),
    *(
        row
        for name, (stream, _kind) in SERVICE_CONSUMERS.items()
        for row in (
            C(
                f"re-create {name} filtered to own grid",
                "pub",
                f"{JS_API}.CONSUMER.CREATE.{stream}.{name}."
                + (ALERTS_PREFIX if stream == ALERTS_STREAM else CASES_PREFIX)
                + ".{own}.>",
            ),
            C(f"info of {name}", "pub", f"{JS_API}.CONSUMER.INFO.{stream}.{name}"),
            C(f"pull from {name}", "pub", f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{name}"),
        )
    ),
    C("read a GW_ALERTS message by number", "pub", f"{JS_API}.STREAM.MSG.GET.{ALERTS_STREAM}"),
    C("read snapshots (object store)", "pub", f"{JS_API}.STREAM.INFO.{OBJ_SNAPSHOTS}"),
    C("write snapshots (object store)", "pub", f"$O.{SNAPSHOT_BUCKET}.M.x"),
    C("read the case cache (KV gw_cases)", "pub", f"{JS_API}.DIRECT.GET.KV_{CASES_KV}"),
    C("register own push subscription", "pub", f"$KV.{PUSH_SUBS_KV}.{{me}}.h1"),
    C("register someone else's push subscription", "pub", f"$KV.{PUSH_SUBS_KV}.{{someone}}.h1"),
    C("change the camera registry", "pub", f"$KV.{CAMERAS_KV}.cam-1"),
    C(
        "read camera credentials (KV gw_camera_secrets)",
        "pub",
        f"{JS_API}.DIRECT.GET.KV_{CAMERA_SECRETS_KV}",
    ),
    C("write camera credentials", "pub", f"$KV.{CAMERA_SECRETS_KV}.cam-1.r1"),
)


@dataclass(frozen=True)
class Identity:
    """A column of the matrix: an example user of one role (and service kind)."""

    label: str
    user: UserConfig


def matrix_identities(grid: str = "grid-a") -> list[Identity]:
    """One example identity per role and service kind."""
    h = "$2b$04$" + "a" * 53

    def u(name: str, role: str, **kw: Any) -> UserConfig:
        return UserConfig(name=name, role=role, password_hash=h, **kw)  # type: ignore[arg-type]

    out = [
        Identity("operator", u("op-zhang", "operator")),
        Identity("responder", u("aux-li", "responder", grid=grid)),
        Identity("grid_leader", u("lead-wang", "grid_leader", grid=grid)),
    ]
    out += [Identity(f"svc:{k}", u(f"svc-{k}", "service", service=k)) for k in SERVICE_KINDS]
    out += [
        Identity("admin", u("admin", "admin")),
        Identity("service (no kind)", u("svc", "service")),
    ]
    return out


def permission_matrix(
    identities: Sequence[Identity] | None = None,
    *,
    own: str = "grid-a",
    other: str = "grid-b",
    someone: str = "lead-sun",
) -> list[tuple[Capability, list[bool]]]:
    """For each capability, whether each identity has it (True: allowed)."""
    ids = list(identities) if identities is not None else matrix_identities(own)
    out = []
    for cap in CAPABILITIES:
        row = []
        for ident in ids:
            subject = cap.subject(ident.user.name, ident.user.grid or own, other, someone)
            row.append(allowed(rules_for(ident.user), cap.action, subject))
        out.append((cap, row))
    return out


MATRIX_BEGIN = "<!-- permission matrix: generated by gridwatch.auth.natsconf.render_matrix -->"
MATRIX_END = "<!-- end of the generated permission matrix -->"


def render_matrix() -> str:
    """The Markdown table of :func:`permission_matrix` (docs/security.md holds it verbatim)."""
    ids = matrix_identities()
    head = ["capability", "NATS", "subject (example)", *(i.label for i in ids)]
    lines = [
        MATRIX_BEGIN,
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for cap, row in permission_matrix(ids):
        example = cap.template.format(me="<me>", own="<grid>", other="<other>", someone="<user>")
        cells = ["yes" if ok else "-" for ok in row]
        lines.append(f"| {cap.what} | {cap.action} | `{example}` | " + " | ".join(cells) + " |")
    lines += ["", MATRIX_END]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m gridwatch.auth.natsconf: the matrix for docs/security.md
    print(render_matrix(), end="")
