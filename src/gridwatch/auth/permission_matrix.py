"""The permission matrix: every capability worth asking about, tried as one example identity
of each role and service kind, evaluated on the rules of :mod:`gridwatch.auth.permissions`.

It exists so the rules can be read and checked as a table: ``docs/security.md`` holds
:func:`render_matrix`'s output verbatim (``python -m gridwatch.auth.natsconf`` prints it) and
``tests/security/test_nats_permissions.py`` tries every cell against a real nats-server, so the
document, the generator and the server cannot drift apart.

>>> allowed(None, "pub", "anything")  # unrestricted (admin)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gridwatch.alerts.subjects import ALERTS_PREFIX, ALERTS_STREAM, HEALTH_PREFIX, SNAPSHOT_BUCKET
from gridwatch.auth.models import SERVICE_KINDS, UserConfig
from gridwatch.auth.permissions import JS_API, OBJ_CLIPS, OBJ_SNAPSHOTS, Rules, rules_for
from gridwatch.auth.subjects import (
    ALL_GRIDS,
    AUDIT_PREFIX,
    AUDIT_STREAM,
    CASE_CMD_PREFIX,
    CASES_KV,
    CASES_PREFIX,
    CASES_STREAM,
    PUSH_SUBS_KV,
    SERVICE_CONSUMERS,
    SNAPSHOT_REQ_PREFIX,
)
from gridwatch.bus.names import (
    CAMERA_SECRETS_KV,
    CAMERAS_KV,
    CLIP_BUCKET,
    CLIP_REQ_PREFIX,
    GB28181_KV,
    GB28181_SENT_KV,
    STATS_PREFIX,
    STATS_STREAM,
)


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
    C("join the clip service's queue", "sub", f"{CLIP_REQ_PREFIX}.>"),
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
    C("clip request, own grid", "pub", f"{CLIP_REQ_PREFIX}.{{own}}.{{me}}"),
    C("clip request, another grid", "pub", f"{CLIP_REQ_PREFIX}.{{other}}.{{me}}"),
    C("clip request under another's name", "pub", f"{CLIP_REQ_PREFIX}.{{own}}.{{someone}}"),
    C("clip request via _all", "pub", f"{CLIP_REQ_PREFIX}.{ALL_GRIDS}.{{me}}"),
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
    C("read evidence clips (object store gw_clips)", "pub", f"{JS_API}.STREAM.INFO.{OBJ_CLIPS}"),
    C("write evidence clips (object store gw_clips)", "pub", f"$O.{CLIP_BUCKET}.M.x"),
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
    C("mark a GB/T 28181 alarm sent (KV gw_gb28181_sent)", "pub", f"$KV.{GB28181_SENT_KV}.a1"),
    C("set the GB/T 28181 guard (KV gw_gb28181)", "pub", f"$KV.{GB28181_KV}.guard"),
    C(
        "read the GB/T 28181 cascade status (KV gw_gb28181)",
        "pub",
        f"{JS_API}.DIRECT.GET.KV_{GB28181_KV}",
    ),
    C("publish (forge) statistics", "pub", f"{STATS_PREFIX}.{{own}}.cam-1.minute"),
    C(
        "named consumer, own grid's statistics",
        "pub",
        f"{JS_API}.CONSUMER.CREATE.{STATS_STREAM}.mine.{STATS_PREFIX}.{{own}}.>",
    ),
    C(
        "named consumer, another grid's statistics",
        "pub",
        f"{JS_API}.CONSUMER.CREATE.{STATS_STREAM}.mine.{STATS_PREFIX}.{{other}}.>",
    ),
    C("read a GW_STATS message by number", "pub", f"{JS_API}.STREAM.MSG.GET.{STATS_STREAM}"),
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
