"""MANSCDP bodies: every body we build read back by the model of WVP's parser with the same
values, GB18030 bytes under a GB2312 declaration, escaping, paging, parsing requests."""

from __future__ import annotations

import datetime as dt

import pytest

from gridwatch.gb28181 import manscdp
from gridwatch.gb28181.ids import grid_group_id, grid_org_id
from gridwatch.gb28181.manscdp import (
    CatalogItem,
    ManscdpError,
    alarm_notify,
    catalog_pages,
    channel_item,
    control_response,
    device_info,
    device_status,
    grid_items,
    keepalive,
    outside_gb2312,
    parse_request,
    wvp_parse,
)
from gridwatch.gb28181.wvp import WvpParseError, strip_bare_ampersands

OURS = "34020000002000000001"
GRIDS = {"north": "北区 & 东区 <一>", "south": "南区"}


def _cameras() -> list[CatalogItem]:
    return [
        channel_item(
            f"340200000013200000{i:02d}",
            name,
            device_id=OURS,
            grid=grid,
            online=i % 2 == 0,
            longitude=117.283042 + i / 1000,
            latitude=31.861191,
            address="合肥市 蜀山区 A&B 路",
        )
        for i, (name, grid) in enumerate(
            [
                ("校门口 1", "north"),
                ("广场>东", "north"),
                ("站前&广场", "south"),
                ("王堃家门口", "south"),
            ]
        )
    ]


def test_keepalive_through_wvp() -> None:
    got = wvp_parse(keepalive(4294, OURS))
    assert got == {
        "root": "Notify",
        "CmdType": "Keepalive",
        "SN": 4294,
        "DeviceID": OURS,
        "Status": "OK",
    }


@pytest.mark.parametrize("page_size", [1, 2, 3, 5, 100])
def test_catalog_pages_through_wvp(page_size: int) -> None:
    items = grid_items(OURS, GRIDS) + _cameras()
    pages = catalog_pages(17, OURS, items, page_size)
    assert len(pages) == -(-len(items) // page_size)
    seen: list[dict[str, object]] = []
    for page in pages:
        got = wvp_parse(page)
        assert got["root"] == "Response"
        assert got["CmdType"] == "Catalog"
        assert got["SN"] == 17
        assert got["DeviceID"] == OURS
        assert got["SumNum"] == len(items)
        device_list = got["DeviceList"]
        assert isinstance(device_list, dict)
        assert device_list["Num"] == len(device_list["Item"]) <= page_size
        seen += device_list["Item"]
    assert [s["DeviceID"] for s in seen] == [i.device_id for i in items]
    by_id = {s["DeviceID"]: s for s in seen}
    for g, name in GRIDS.items():
        group = by_id[grid_group_id(OURS, g)]
        assert group == {"DeviceID": grid_group_id(OURS, g), "Name": name}
        org = by_id[grid_org_id(OURS, g)]
        assert org["ParentID"] == org["BusinessGroupID"] == grid_group_id(OURS, g)
        assert org["Name"] == name
    for cam in _cameras():
        got_cam = by_id[cam.device_id]
        assert got_cam["Name"] == cam.name
        assert got_cam["Address"] == cam.address
        assert got_cam["Status"] == (1 if cam.online else 0)
        assert got_cam["Longitude"] == pytest.approx(cam.longitude, abs=1e-6)
        assert got_cam["Latitude"] == pytest.approx(cam.latitude, abs=1e-6)
        assert got_cam["Parental"] == 0
        assert got_cam["RegisterWay"] == 1
        assert got_cam["SafetyWay"] == 0
        assert got_cam["Secrecy"] == "0"
        assert got_cam["CivilCode"] == "340200"
        assert got_cam["Manufacturer"] == "gridwatch"
        assert got_cam["Owner"] == "gridwatch"
        assert got_cam["ParentID"] == cam.parent_id
        assert got_cam["BusinessGroupID"] == cam.business_group_id


def test_empty_catalog_is_one_page() -> None:
    pages = catalog_pages(1, OURS, [], 10)
    got = wvp_parse(pages[0])
    assert len(pages) == 1
    assert got["SumNum"] == 0
    assert got["DeviceList"] == {"Num": 0, "Item": []}
    with pytest.raises(ValueError, match="page_size"):
        catalog_pages(1, OURS, [], 0)


def test_device_info_and_status_through_wvp() -> None:
    info = wvp_parse(device_info(5, OURS, name="网格 平台", firmware="1.2", channels=4))
    assert info["CmdType"] == "DeviceInfo"
    assert info["SN"] == 5
    assert info["DeviceName"] == "网格 平台"
    assert info["Result"] == "OK"
    assert info["Channel"] == "4"
    assert info["Firmware"] == "1.2"
    alarms = ["34020000001320000001", "34020000001320000002"]
    status = wvp_parse(
        device_status(
            6,
            OURS,
            online=True,
            guard_on=True,
            alarm_ids=alarms,
            device_time=dt.datetime(2026, 12, 5, 20, 1, 2),
        )
    )
    assert status["Online"] == "ONLINE"
    assert status["Status"] == "OK"
    assert status["DeviceTime"] == "2026-12-05T20:01:02"
    items = status["Alarmstatus"]["Item"]
    assert status["Alarmstatus"]["Num"] == 3
    assert items[0] == {"DeviceID": OURS, "DutyStatus": "ALARM"}
    assert [i["DeviceID"] for i in items[1:]] == alarms
    off = wvp_parse(device_status(7, OURS, online=False, guard_on=False))
    assert off["Online"] == "OFFLINE"
    assert off["Alarmstatus"]["Item"][0]["DutyStatus"] == "OFFDUTY"
    on = wvp_parse(device_status(8, OURS, online=True, guard_on=True))
    assert on["Alarmstatus"]["Item"][0]["DutyStatus"] == "ONDUTY"


@pytest.mark.parametrize(("alarm_type", "event_type"), [(10, None), (6, 1), (None, None)])
def test_alarm_through_wvp(alarm_type: int | None, event_type: int | None) -> None:
    desc = "人群聚集: 校门口 区域 18 人 & <更多>"
    body = alarm_notify(
        123456,
        "34020000001320000001",
        1,
        5,
        dt.datetime(2026, 12, 5, 8, 0, 9),
        desc,
        117.283042,
        31.861191,
        alarm_type,
        event_type,
    )
    got = wvp_parse(body)
    assert got["CmdType"] == "Alarm"
    assert got["SN"] == 123456
    assert got["DeviceID"] == "34020000001320000001"
    assert got["AlarmPriority"] == "1"
    assert got["AlarmMethod"] == "5"
    assert got["AlarmTime"] == "2026-12-05T08:00:09"
    assert got["AlarmDescription"] == desc
    assert got["Longitude"] == pytest.approx(117.283042)
    assert got["Latitude"] == pytest.approx(31.861191)
    assert got["AlarmType"] == (None if alarm_type is None else str(alarm_type))
    if event_type is not None:
        assert got["Info"]["EventType"] == str(event_type)
    req = parse_request(body)  # our own reader agrees
    assert req.fields["AlarmDescription"] == desc
    assert req.info.get("AlarmType") == (None if alarm_type is None else str(alarm_type))


def test_device_fault_alarm_without_position() -> None:
    body = alarm_notify(
        1, "34020000001320000001", 2, 6, "2026-12-05T08:00:09", "设备离线: 东门", None, None, None
    )
    got = wvp_parse(body)
    assert got["AlarmMethod"] == "6"
    assert "Longitude" not in got
    assert "Info" not in got
    assert "AlarmType" not in got


def test_control_response_through_wvp() -> None:
    assert wvp_parse(control_response(9, OURS, True))["Result"] == "OK"
    assert wvp_parse(control_response(9, OURS, False))["Result"] == "ERROR"


def test_bytes_are_gb18030_under_a_gb2312_declaration() -> None:
    body = keepalive(1, OURS)
    assert body.startswith(b'<?xml version="1.0" encoding="GB2312"?>\r\n')
    name = "校门口"  # within GB2312: the bytes are the GB2312 ones
    page = catalog_pages(1, OURS, [CatalogItem(grid_group_id(OURS, "n"), name)], 5)[0]
    assert name.encode("gb2312") in page
    assert page.decode("gb2312")  # a GB2312-only decoder reads it
    rare = "王堃"  # 堃 is outside GB2312, inside GB18030
    page = catalog_pages(1, OURS, [CatalogItem(grid_group_id(OURS, "n"), rare)], 5)[0]
    assert rare.encode("gb18030") in page
    with pytest.raises(UnicodeDecodeError):
        page.decode("gb2312")
    assert wvp_parse(page)["DeviceList"]["Item"][0]["Name"] == rare  # GB18030 fallback
    assert outside_gb2312("王堃 😀 ok") == ["堃", "😀"]


def test_escaping_never_writes_numeric_references() -> None:
    body = alarm_notify(
        1, "34020000001320000001", 1, 5, "2026-12-05T08:00:09", "a&b<c>\"d'\x07", None, None, 10
    )
    assert b"&amp;b&lt;c&gt;\"d'" in body
    assert b"&#" not in body
    assert wvp_parse(body)["AlarmDescription"] == "a&b<c>\"d'"


def test_wvp_model_rules() -> None:
    """The WVP model itself: rules our bodies must survive, checked on hand-written bodies."""
    assert strip_bare_ampersands(b"&apos;&quot;&x;&") == b"&apos;&quot;x;"
    with pytest.raises(WvpParseError, match="parseInt"):
        wvp_parse(b"<Notify><CmdType>Keepalive</CmdType><SN>1.0</SN></Notify>")
    with pytest.raises(WvpParseError, match="parseInt"):
        wvp_parse(b"<Notify><CmdType>Keepalive</CmdType><SN>99999999999</SN></Notify>")
    with pytest.raises(WvpParseError, match="no SN"):
        wvp_parse(b"<Notify><CmdType>Keepalive</CmdType></Notify>")
    with pytest.raises(WvpParseError, match="AlarmTime"):
        wvp_parse(
            b"<Notify><CmdType>Alarm</CmdType><SN>1</SN>"
            b"<AlarmTime>2026-12-05 08:00:09</AlarmTime></Notify>"
        )
    lower = wvp_parse(
        b"<Notify><CmdType>Alarm</CmdType><SN>1</SN><AlarmMethod>5</AlarmMethod>"
        b"<AlarmTime>2026-12-05T08:00:09</AlarmTime><Longitude>east</Longitude>"
        b"<info><AlarmType>2</AlarmType></info></Notify>"
    )
    assert lower["AlarmType"] == "2"
    assert lower["Longitude"] == 0.0
    item = wvp_parse(
        b'<Response><CmdType>Catalog</CmdType><SN>1</SN><SumNum>1</SumNum><DeviceList Num="1">'
        b"<Item><DeviceID>1</DeviceID><Status>ONLINE</Status><ParentID>a/b/c</ParentID></Item>"
        b"</DeviceList></Response>"
    )["DeviceList"]["Item"][0]
    assert item["Status"] == 1
    assert item["ParentID"] == "c"
    with pytest.raises(WvpParseError, match="Status"):
        wvp_parse(
            b'<Response><CmdType>Catalog</CmdType><SN>1</SN><DeviceList Num="1">'
            b"<Item><Status>MAYBE</Status></Item></DeviceList></Response>"
        )


def test_parse_control_requests() -> None:
    guard = parse_request(
        '<?xml version="1.0" encoding="GB2312"?>\r\n<Control>\r\n<CmdType>DeviceControl'
        "</CmdType>\r\n<SN> 42 </SN>\r\n<DeviceID>34020000002000000001</DeviceID>\r\n"
        "<GuardCmd>ResetGuard</GuardCmd>\r\n</Control>\r\n".encode("gb2312")
    )
    assert (guard.root, guard.cmd_type, guard.sn, guard.guard_cmd) == (
        "Control",
        "DeviceControl",
        42,
        "ResetGuard",
    )
    reset = parse_request(
        b'<?xml version="1.0" encoding="UTF-8"?><Control><CmdType>DeviceControl</CmdType>'
        b"<SN>43</SN><DeviceID>34020000001320000001</DeviceID><AlarmCmd>ResetAlarm</AlarmCmd>"
        b"<Info><AlarmMethod>5</AlarmMethod><AlarmType>10</AlarmType></Info></Control>"
    )
    assert reset.alarm_cmd == "ResetAlarm"
    assert reset.guard_cmd is None
    assert reset.info == {"AlarmMethod": "5", "AlarmType": "10"}
    query = parse_request(
        '<?xml version="1.0" encoding="GB18030"?><Query><CmdType>Catalog</CmdType><SN>7</SN>'
        "<DeviceID>34020000002000000001</DeviceID><Note>北区 & 东</Note></Query>".encode("gb18030")
    )
    assert query.cmd_type == "Catalog"
    assert query.fields["Note"] == "北区 & 东"
    utf8_mislabelled = parse_request(
        b'<?xml version="1.0" encoding="GB2312"?><Query><CmdType>DeviceInfo</CmdType><SN>8</SN>'
        b"<DeviceID>x</DeviceID></Query>"
    )
    assert utf8_mislabelled.sn == 8


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"<Query><SN>1</SN></Query>", "no CmdType"),
        (b"<Query><CmdType>Catalog</CmdType><SN>x</SN></Query>", "not an integer"),
        (b"<Query><CmdType>Catalog</CmdType>", "well-formed"),
        (b'<!DOCTYPE q [<!ENTITY a "b">]><Query><CmdType>&a;</CmdType></Query>', "DTD"),
        (b"\xff\xfe\x00<", "neither"),
    ],
)
def test_parse_request_errors(body: bytes, fragment: str) -> None:
    with pytest.raises(ManscdpError, match=fragment):
        parse_request(body)


def test_every_builder_is_covered() -> None:
    """A new body builder must get a WVP test here: the list below is every one of them."""
    builders = {
        "keepalive",
        "catalog_pages",
        "device_info",
        "device_status",
        "alarm_notify",
        "control_response",
    }
    public = {
        n
        for n in dir(manscdp)
        if callable(getattr(manscdp, n))
        and getattr(getattr(manscdp, n), "__module__", "") == manscdp.__name__
        and not n.startswith("_")
        and n[0].islower()
    }
    helpers = {
        "escape",
        "outside_gb2312",
        "grid_items",
        "channel_item",
        "decode_body",
        "xml_root",
        "parse_request",
    }
    assert public - helpers == builders
