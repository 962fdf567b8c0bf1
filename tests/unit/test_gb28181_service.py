"""The cascade service's pure parts, without a network: which alert becomes which Alarm body
(method, type, event type, channel, Chinese description, local time), and how requests from
the superior and from strangers are answered (the answers that go out later are not sent: the
service is never started here)."""

from __future__ import annotations

import datetime as dt

import pytest
from nats.aio.client import Client as NATS

from gridwatch.gb28181 import manscdp
from gridwatch.gb28181.service import Gb28181Service, channels_of
from gridwatch.gb28181.sip import SipMessage, build_request
from gridwatch.model import Alert, IncidentState
from tests.integration.gb28181_peers import CHANNELS, OUR_ID, SUPERIOR_ID, cascade_config


@pytest.fixture
def service() -> Gb28181Service:
    cfg = cascade_config(5060, extra="  alarm_types: {fall: {alarm_method: 5, alarm_type: 2}}")
    return Gb28181Service(NATS(), cfg)


def _alert(rule: str, camera: str = "cam-a", zone: str | None = "z1", count: int = 4) -> Alert:
    t = dt.datetime(2026, 12, 5, 4, 30, 15, tzinfo=dt.UTC)
    return Alert(
        id="a" * 24,
        message_id="a" * 24 + ".raised.0",
        type=rule,
        state=IncidentState.RAISED,
        sequence=0,
        camera_id=camera,
        camera_name="校门口",
        grid_id="grid-a",
        zone_id=zone,
        started_at=t,
        observed_at=t,
        count=count,
        peak_count=count,
        boxes=[],
        severity="critical",
    )


@pytest.mark.parametrize(
    ("rule", "method", "alarm_type", "event_type"),
    [
        ("crowding", "5", "10", None),
        ("intrusion", "5", "6", "1"),
        ("line_crossing", "5", "5", None),
        ("offline", "6", None, None),  # a device fault, no <Info>
        ("fall", "5", "2", None),  # overridden in config
    ],
)
def test_alarm_bodies_follow_the_table(
    service: Gb28181Service, rule: str, method: str, alarm_type: str | None, event_type: str | None
) -> None:
    body = service.alarm_body(_alert(rule))
    assert body is not None
    req = manscdp.parse_request(body)
    assert (req.cmd_type, req.device_id) == ("Alarm", CHANNELS["cam-a"])
    assert req.fields["AlarmMethod"] == method
    assert req.fields["AlarmPriority"] == "1"  # critical
    assert req.fields["AlarmTime"] == "2026-12-05T12:30:15"  # Asia/Shanghai, no offset
    assert req.info.get("AlarmType") == alarm_type
    assert req.info.get("EventType") == event_type
    assert "z1" in req.fields["AlarmDescription"] or rule == "offline"


def test_an_alert_of_a_camera_outside_the_cascade_has_no_body(service: Gb28181Service) -> None:
    assert service.alarm_body(_alert("crowding", camera="cam-x")) is None


def test_channels_come_from_the_config() -> None:
    cfg = cascade_config(5060)
    assert cfg.gb28181 is not None
    chans = {c.camera_id: c for c in channels_of(cfg, cfg.gb28181)}
    assert {k: c.channel_id for k, c in chans.items()} == CHANNELS
    assert (chans["cam-a"].lon, chans["cam-a"].lat) == (121.4737, 31.2304)


def _from(user: str, method: str = "MESSAGE", body: bytes = b"") -> SipMessage:
    return build_request(
        method,
        f"sip:{OUR_ID}@3402000000",
        from_uri=f"sip:{user}@3402000000",
        from_tag="x",
        to_uri=f"sip:{OUR_ID}@3402000000",
        call_id="c",
        cseq=1,
        via_host="127.0.0.1",
        via_port=5060,
        transport="udp",
        body=body,
        content_type="Application/MANSCDP+xml" if body else None,
    )


async def test_requests_are_answered_by_kind(service: Gb28181Service) -> None:
    stranger = await service.handle(_from("34020000002000000099", "OPTIONS"))
    assert stranger is not None
    assert stranger.status == 403
    options = await service.handle(_from(SUPERIOR_ID, "OPTIONS"))
    assert options is not None
    assert options.status == 200
    assert "MESSAGE" in (options.headers.get("allow") or "")
    invite = await service.handle(_from(SUPERIOR_ID, "INVITE"))
    assert invite is not None
    assert invite.status == 405
    bad = await service.handle(_from(SUPERIOR_ID, body=b"<Query><SN>x</SN></Query>"))
    assert bad is not None
    assert bad.status == 400
    assert await service.handle(_from(SUPERIOR_ID, "ACK")) is None
