"""``gridwatch clip get ALERT_ID -o FILE``: an alert's evidence clip, as the logged-in user.

The clip comes from the clip service (``gridwatch cases serve`` runs it beside the snapshot
service), never from the object store: masked, and blurred unless ``--full`` and the user's
role may see full clips (an audited view). ALERT_ID is an alert's id, looked up among the
raised alerts of GW_ALERTS (the user's grid, or every grid for operators, over ``--since``),
or a clip name as in an alert's ``clip`` field (``<camera>/<alert id>.mp4``).

The user is ``--user`` (else ``$GW_NATS_USER``, else the config's ``nats.user``), the password
``$GW_NATS_PASSWORD`` or a prompt; the grid ``--grid``, else the user's in the config, else
the alert's.

Exit codes: 0 done, 1 an operation failed (NATS unreachable, refused, no such alert or clip),
2 bad input.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from gridwatch.cli.common import (
    EXIT_INVALID,
    ConfigOpt,
    NatsOpt,
    UserOpt,
    connect,
    fail,
    optional_config,
    parse_duration,
    run,
)

clip_app = typer.Typer(help="Fetch alert evidence clips (masked, blurred).", no_args_is_help=True)


@clip_app.command("get")
def clip_get(
    alert_id: Annotated[
        str, typer.Argument(help="Alert id, or a clip name as in an alert's 'clip' field.")
    ],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="MP4 file to write.")] = None,
    full: Annotated[
        bool,
        typer.Option("--full", help="Unblurred (audited; roles of notify.full_snapshot_roles)."),
    ] = False,
    grid: Annotated[
        str | None,
        typer.Option("--grid", "-g", help="The alert's grid (default: yours, or the alert's)."),
    ] = None,
    since: Annotated[
        str, typer.Option(help="How far back to look the alert up (10m, 2h, 7d).")
    ] = "7d",
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the clip (a re-encode may come first).")
    ] = 300.0,
    config: ConfigOpt = None,
    nats_url: NatsOpt = None,
    user: UserOpt = None,
) -> None:
    """Fetch an alert's evidence clip (MP4) through the clip service."""
    from gridwatch.alerts.clip_service import (
        CLIP_NAME_RE,
        ClipRequestError,
        find_alert_clip,
        request_clip_reply,
        served_variant,
    )
    from gridwatch.bus.names import TOKEN_RE

    if not CLIP_NAME_RE.fullmatch(alert_id) and not TOKEN_RE.fullmatch(alert_id):
        fail(f"{alert_id!r} is neither an alert id nor a clip name", EXIT_INVALID)
    lookback = parse_duration(since)
    cfg = optional_config(config)

    async def main() -> tuple[bytes, str, str]:
        nc, u = await connect(cfg, nats_url, user, "gridwatch-clip")
        try:
            if not u:
                fail("name the user: --user or $GW_NATS_USER", EXIT_INVALID)
            g = grid
            if g is None and cfg is not None:
                g = next((x.grid for x in cfg.users if x.name == u), None)
            name = alert_id
            if not CLIP_NAME_RE.fullmatch(alert_id) or g is None:
                try:
                    found = await find_alert_clip(
                        nc, CLIP_NAME_RE.sub(r"\2", alert_id), grid=g, since=lookback
                    )
                except Exception as e:  # refused (another grid's alerts), NATS gone
                    hint = "" if g else " (give --grid: your grid)"
                    fail(f"cannot look alert {alert_id} up: {type(e).__name__}: {e}{hint}")
                if found is None:
                    where = f"grid {g}" if g else "any grid you may read"
                    fail(f"no raised alert {alert_id} with a clip in {where} since {since} ago")
                name, g = found
            try:
                reply = await request_clip_reply(
                    nc,
                    name=name,
                    grid=g,
                    user=u,
                    variant="full" if full else "blurred",
                    reply_timeout=timeout,
                )
            except ClipRequestError as e:
                fail(f"{e.code}: {e}")
            return reply.data, served_variant(reply), name
        finally:
            await nc.drain()

    t0 = dt.datetime.now()
    data, variant, name = run(main())
    target = out or Path(name.replace("/", "_"))
    target.write_bytes(data)
    took = (dt.datetime.now() - t0).total_seconds()
    note = "; full is not allowed to your role" if full and variant != "full" else ""
    typer.echo(f"wrote {target} ({len(data)} bytes, {variant}{note}) in {took:.1f} s")


def register(app: typer.Typer) -> None:
    """Add ``clip`` to the ``gridwatch`` app."""
    app.add_typer(clip_app, name="clip")
