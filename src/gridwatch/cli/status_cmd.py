"""``gridwatch status``: retention (configured and applied), stream sizes, cases by state and
the local spool.

Exit codes: 0 done, 1 NATS unreachable, 2 bad config.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from gridwatch.cli.common import (
    ConfigFile,
    JsonOpt,
    NatsOpt,
    UserOpt,
    connect,
    fail,
    load_or_exit,
    run,
)


def status_cmd(
    config: ConfigFile,
    nats_url: NatsOpt = None,
    user: UserOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Retention (configured and applied), stream sizes, cases by state, the local spool."""
    from gridwatch.alerts.spool import default_spool_dir
    from gridwatch.alerts.streams import snapshot_stream_name
    from gridwatch.alerts.subjects import ALERTS_STREAM
    from gridwatch.auth.subjects import CASES_KV, CASES_STREAM
    from gridwatch.bus.names import CLIP_BUCKET, object_store_stream
    from gridwatch.cases.model import Case

    cfg = load_or_exit(config)
    a = cfg.alerts
    out: dict[str, Any] = {
        "retention_configured_days": {
            "alerts": a.retention_days,
            "snapshots": a.snapshot_retention_days or a.retention_days,
            "cases": cfg.cases.retention_days,
            "clips": a.clips.retention_days,
        },
        "clips_configured": {
            "enabled": a.clips.enabled,
            "max_bytes": a.clips.max_bytes,
            "pre_s": a.clips.pre_s,
            "post_s": a.clips.post_s,
        },
        "users": {
            r: sum(u.role == r for u in cfg.users) for r in sorted({u.role for u in cfg.users})
        },
    }
    spool_dir = Path(a.spool.dir) if a.spool.dir else default_spool_dir() / "worker"
    entries = list(spool_dir.glob("*.json")) if spool_dir.exists() else []
    out["spool"] = {
        "dir": str(spool_dir),
        "alerts": len(entries),
        "bytes": sum(p.stat().st_size for p in spool_dir.glob("*") if p.is_file())
        if spool_dir.exists()
        else 0,
    }

    async def main() -> None:
        nc, _ = await connect(cfg, nats_url, user, "gridwatch-status")
        js = nc.jetstream(timeout=3.0)
        streams: dict[str, Any] = {}
        try:
            for name in (
                ALERTS_STREAM,
                CASES_STREAM,
                snapshot_stream_name(),
                object_store_stream(CLIP_BUCKET),
                f"KV_{CASES_KV}",
            ):
                try:
                    info = await js.stream_info(name)
                    streams[name] = {
                        "messages": info.state.messages,
                        "bytes": info.state.bytes,
                        "max_age_days": round((info.config.max_age or 0) / 86400, 2),
                        "max_bytes": info.config.max_bytes
                        if info.config.max_bytes and info.config.max_bytes > 0
                        else None,
                    }
                except Exception as e:
                    streams[name] = {"error": type(e).__name__}
            out["streams"] = streams
            counts: dict[str, int] = {}
            try:
                kv = await js.key_value(CASES_KV)
                for key in await kv.keys():
                    entry = await kv.get(key)
                    if entry.value:
                        st = Case.model_validate_json(entry.value).state.value
                        counts[st] = counts.get(st, 0) + 1
            except Exception as e:
                counts = {"error": type(e).__name__}  # type: ignore[dict-item]
            out["cases"] = counts
            if cfg.gb28181 is not None:
                out["gb28181"] = await _cascade_status(js)
        finally:
            await nc.drain()

    try:
        run(main())
    except OSError as e:
        fail(f"NATS unreachable: {e}")
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    r = out["retention_configured_days"]
    typer.echo(
        f"retention (days): alerts {r['alerts']:g}, snapshots {r['snapshots']:g}, "
        f"cases {r['cases']:g}, clips {r['clips']:g}"
    )
    for name, s in out.get("streams", {}).items():
        if "error" in s:
            typer.echo(f"  {name:<20} {s['error']}")
        else:
            typer.echo(
                f"  {name:<20} {s['messages']:>8} msgs {s['bytes']:>12} bytes  "
                f"max age {s['max_age_days']:g} d"
                + (f", max {s['max_bytes']} bytes" if s.get("max_bytes") else "")
            )
    typer.echo("cases: " + (", ".join(f"{k} {v}" for k, v in out["cases"].items()) or "none"))
    sp = out["spool"]
    typer.echo(f"spool {sp['dir']}: {sp['alerts']} alerts waiting, {sp['bytes']} bytes")
    typer.echo("users: " + (", ".join(f"{v} {k}" for k, v in out["users"].items()) or "none"))
    if "gb28181" in out:
        typer.echo(_cascade_line(out["gb28181"]))


async def _cascade_status(js: Any) -> dict[str, Any]:
    """The GB/T 28181 cascade's last report (KV ``gw_gb28181``, key ``status``)."""
    from gridwatch.gb28181.metrics import read_status

    try:
        report = await read_status(js)
    except Exception as e:
        return {"error": type(e).__name__}
    return {"error": "no report"} if report is None else report.model_dump(mode="json")


def _cascade_line(s: dict[str, Any]) -> str:
    """One line: registration state, last keepalive, alarms sent / pending / failed.

    >>> _cascade_line({"state": "registered", "superior": "sip:1@2", "last_keepalive_ok": 0,
    ...     "sent": 3, "pending": 1, "failed": 0})
    'gb28181 sip:1@2: registered, last keepalive never, alarms sent 3 / pending 1 / failed 0'
    >>> _cascade_line({"error": "NotFoundError"})
    'gb28181: no status (NotFoundError: the cascade has not run yet?)'
    """
    import datetime as dt

    if "error" in s:
        return f"gb28181: no status ({s['error']}: the cascade has not run yet?)"

    def when(ts: float | None) -> str:
        if not ts:
            return "never"
        return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    return (
        f"gb28181 {s['superior']}: {s['state']}, last keepalive {when(s['last_keepalive_ok'])}, "
        f"alarms sent {s['sent']} / pending {s['pending']} / failed {s['failed']}"
    )


def register(app: typer.Typer) -> None:
    """Add ``status`` to the ``gridwatch`` app."""
    app.command("status")(status_cmd)
