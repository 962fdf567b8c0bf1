"""MANSCDP XML bodies (GB/T 28181 §A.2): what we send to the superior and what it asks us.

Encoding. Platforms expect ``encoding="GB2312"`` in the declaration (WVP decodes with its
per-device charset, GB2312 by default), so every body we build says GB2312 and is encoded as
**GB18030**, a superset that is byte-identical for every GB2312 character. Text outside GB2312
(traditional or rare hanzi such as 堃 喆 犇, emoji, most non-Chinese scripts beyond Latin/Greek/
Cyrillic/kana) still gets valid GB18030 bytes, which a GB2312-only decoder cannot read: keep
camera, grid and zone names within GB2312 for the widest interop (:func:`outside_gb2312`
finds the characters that are not).

Escaping. ``&``, ``<`` and ``>`` in text become ``&amp;``, ``&lt;``, ``&gt;``; nothing else is
escaped and no numeric character references are ever written, because WVP strips an ``&``
that does not start one of the five named entities (a workaround for Hikvision devices).

>>> body = keepalive(7, "34020000002000000001")
>>> body.splitlines()[0]
b'<?xml version="1.0" encoding="GB2312"?>'
>>> req = parse_request(body)
>>> req.root, req.cmd_type, req.sn, req.device_id
('Notify', 'Keepalive', 7, '34020000002000000001')
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from gridwatch.gb28181.ids import (
    BUSINESS_GROUP,
    VIRTUAL_ORG,
    grid_group_id,
    grid_org_id,
    type_code,
)
from gridwatch.gb28181.wvp import WvpParseError as WvpParseError
from gridwatch.gb28181.wvp import wvp_parse as wvp_parse

DECLARED_ENCODING = "GB2312"
"""What the XML declaration says."""
WIRE_ENCODING = "gb18030"
"""How the bytes are encoded (a superset of GB2312)."""
CONTENT_TYPE = "Application/MANSCDP+xml"
"""The SIP Content-Type of a MANSCDP body."""
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
"""GB/T 28181 local time, no zone and no fraction (WVP parses exactly this)."""

_DECL_RE = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9_.-]+)[\"'][^>]*\?>")
_ANY_DECL_RE = re.compile(r"^\s*<\?xml[^>]*\?>")
_BARE_AMP_RE = re.compile(r"&(?!(?:[A-Za-z]+|#\d+|#x[0-9A-Fa-f]+);)")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


class ManscdpError(ValueError):
    """A body that is not MANSCDP XML we can read."""


def escape(text: str) -> str:
    """Escape text content: ``&``, ``<``, ``>`` only; control characters XML forbids dropped.

    >>> escape("A&B <1> \\x01ok")
    'A&amp;B &lt;1&gt; ok'
    """
    text = _CONTROL_RE.sub("", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def outside_gb2312(text: str) -> list[str]:
    """The characters of ``text`` that GB2312 cannot encode (GB18030 can).

    >>> outside_gb2312("校门口"), outside_gb2312("王堃")
    ([], ['堃'])
    """
    out: list[str] = []
    for ch in text:
        try:
            ch.encode("gb2312")
        except UnicodeEncodeError:
            if ch not in out:
                out.append(ch)
    return out


def _num(v: float) -> str:
    return f"{v:.6f}"


def _document(root: str, fields: Iterable[tuple[str, str | None]], tail: str = "") -> bytes:
    """Serialize ``<root>`` with leaf ``fields`` in order (None: omitted) and raw ``tail``."""
    lines = [f'<?xml version="1.0" encoding="{DECLARED_ENCODING}"?>', f"<{root}>"]
    lines += [f"<{k}>{escape(v)}</{k}>" for k, v in fields if v is not None]
    if tail:
        lines.append(tail)
    lines.append(f"</{root}>")
    return ("\r\n".join(lines) + "\r\n").encode(WIRE_ENCODING, errors="replace")


def _leaves(fields: Iterable[tuple[str, str | None]]) -> str:
    return "\r\n".join(f"<{k}>{escape(v)}</{k}>" for k, v in fields if v is not None)


def keepalive(sn: int, device_id: str) -> bytes:
    """The Keepalive notify (§9.6) sent every ``keepalive_s``."""
    return _document(
        "Notify",
        [("CmdType", "Keepalive"), ("SN", str(sn)), ("DeviceID", device_id), ("Status", "OK")],
    )


@dataclass(frozen=True, slots=True)
class CatalogItem:
    """One catalog entry: a business group (215), a virtual organisation (216) or a channel.

    Only the fields the standard defines for the item's type are written (a 215 has a name and
    nothing else; a 216 a parent and a business group; a channel all of them).
    """

    device_id: str
    name: str
    parent_id: str | None = None
    business_group_id: str | None = None
    manufacturer: str = "gridwatch"
    model: str = "gridwatch"
    owner: str = "gridwatch"
    civil_code: str = ""
    address: str = ""
    parental: int = 0
    register_way: int = 1
    secrecy: int = 0
    online: bool = True
    longitude: float | None = None
    latitude: float | None = None

    def fields(self) -> list[tuple[str, str | None]]:
        kind = type_code(self.device_id)
        base: list[tuple[str, str | None]] = [("DeviceID", self.device_id), ("Name", self.name)]
        if kind == BUSINESS_GROUP:
            return base
        if kind == VIRTUAL_ORG:
            return [
                *base,
                ("ParentID", self.parent_id),
                ("BusinessGroupID", self.business_group_id),
            ]
        return [
            *base,
            ("Manufacturer", self.manufacturer),
            ("Model", self.model),
            ("Owner", self.owner),
            ("CivilCode", self.civil_code),
            ("Address", self.address),
            ("Parental", str(self.parental)),
            ("ParentID", self.parent_id),
            ("BusinessGroupID", self.business_group_id),
            ("SafetyWay", "0"),
            ("RegisterWay", str(self.register_way)),
            ("Secrecy", str(self.secrecy)),
            ("Status", "ON" if self.online else "OFF"),
            ("Longitude", None if self.longitude is None else _num(self.longitude)),
            ("Latitude", None if self.latitude is None else _num(self.latitude)),
        ]


def grid_items(device_id: str, grids: Mapping[str, str]) -> list[CatalogItem]:
    """Each grid as a business group (215) holding one virtual organisation (216) of its
    cameras; ``grids`` maps grid id → display name (the id when the name is empty).

    >>> [type_code(i.device_id) for i in grid_items("34020000002000000001", {"n": "北区"})]
    [215, 216]
    """
    out: list[CatalogItem] = []
    for grid, name in grids.items():
        group = grid_group_id(device_id, grid)
        out.append(CatalogItem(device_id=group, name=name or grid))
        out.append(
            CatalogItem(
                device_id=grid_org_id(device_id, grid),
                name=name or grid,
                parent_id=group,
                business_group_id=group,
            )
        )
    return out


def channel_item(
    channel_id: str,
    name: str,
    *,
    device_id: str,
    grid: str,
    online: bool,
    longitude: float | None = None,
    latitude: float | None = None,
    civil_code: str = "",
    address: str = "",
) -> CatalogItem:
    """A camera as a channel (132) inside its grid's virtual organisation."""
    return CatalogItem(
        device_id=channel_id,
        name=name,
        parent_id=grid_org_id(device_id, grid),
        business_group_id=grid_group_id(device_id, grid),
        civil_code=civil_code or device_id[:6],
        address=address,
        online=online,
        longitude=longitude,
        latitude=latitude,
    )


def catalog_pages(
    sn: int, device_id: str, items: Sequence[CatalogItem], page_size: int
) -> list[bytes]:
    """The Catalog response (§A.2.6.4) split in pages of ``page_size`` items.

    Each page repeats the query's SN and the total in ``SumNum``; the superior collects pages
    until it has ``SumNum`` items. No items: one page with ``SumNum`` 0.

    >>> pages = catalog_pages(3, "34020000002000000001",
    ...     grid_items("34020000002000000001", {"a": "A", "b": "B"}), 3)
    >>> len(pages), [p.count(b"<Item>") for p in pages]
    (2, [3, 1])
    """
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    chunks = [items[i : i + page_size] for i in range(0, len(items), page_size)] or [[]]
    pages = []
    for chunk in chunks:
        body = "\r\n".join(f"<Item>\r\n{_leaves(it.fields())}\r\n</Item>" for it in chunk)
        tail = f'<DeviceList Num="{len(chunk)}">' + (f"\r\n{body}\r\n" if body else "")
        tail += "</DeviceList>"
        pages.append(
            _document(
                "Response",
                [
                    ("CmdType", "Catalog"),
                    ("SN", str(sn)),
                    ("DeviceID", device_id),
                    ("SumNum", str(len(items))),
                ],
                tail,
            )
        )
    return pages


def device_info(
    sn: int,
    device_id: str,
    *,
    name: str = "gridwatch",
    manufacturer: str = "gridwatch",
    model: str = "gridwatch",
    firmware: str = "",
    channels: int = 0,
) -> bytes:
    """The DeviceInfo response (§A.2.6.6)."""
    return _document(
        "Response",
        [
            ("CmdType", "DeviceInfo"),
            ("SN", str(sn)),
            ("DeviceID", device_id),
            ("DeviceName", name),
            ("Result", "OK"),
            ("Manufacturer", manufacturer),
            ("Model", model),
            ("Firmware", firmware or None),
            ("Channel", str(channels)),
        ],
    )


def device_status(
    sn: int,
    device_id: str,
    *,
    online: bool,
    guard_on: bool,
    alarm_ids: Iterable[str] = (),
    device_time: dt.datetime | None = None,
) -> bytes:
    """The DeviceStatus response (§A.2.6.7): online, and the duty status of the platform
    (ONDUTY when guarded, OFFDUTY when not, ALARM while alarms are active) and of each
    channel with an active alarm."""
    alarms = list(dict.fromkeys(alarm_ids))
    duty = ("ALARM" if alarms else "ONDUTY") if guard_on else "OFFDUTY"
    items = [(device_id, duty)] + [(a, "ALARM") for a in alarms if a != device_id]
    body = "\r\n".join(
        f"<Item>\r\n{_leaves([('DeviceID', i), ('DutyStatus', d)])}\r\n</Item>" for i, d in items
    )
    tail = f'<Alarmstatus Num="{len(items)}">\r\n{body}\r\n</Alarmstatus>'
    return _document(
        "Response",
        [
            ("CmdType", "DeviceStatus"),
            ("SN", str(sn)),
            ("DeviceID", device_id),
            ("Result", "OK"),
            ("Online", "ONLINE" if online else "OFFLINE"),
            ("Status", "OK" if online else "ERROR"),
            ("Encode", "ON"),
            ("Record", "OFF"),
            ("DeviceTime", device_time.strftime(TIME_FORMAT) if device_time else None),
        ],
        tail,
    )


def alarm_notify(
    sn: int,
    channel_id: str,
    priority: int,
    method: int,
    time: dt.datetime | str,
    description: str,
    lon: float | None,
    lat: float | None,
    alarm_type: int | None,
    event_type: int | None = None,
) -> bytes:
    """The Alarm notify (§A.2.5.4). ``time`` is local time (a datetime is formatted as
    ``YYYY-MM-DDTHH:MM:SS``, its zone dropped: convert first, see
    :func:`gridwatch.gb28181.alarm_map.local_time`). ``<Info>`` is written when there is an
    ``alarm_type``; ``event_type`` goes in ``<AlarmTypeParam>`` (intrusion: 1 enter, 2 leave).
    """
    when = time.strftime(TIME_FORMAT) if isinstance(time, dt.datetime) else time
    tail = ""
    if alarm_type is not None:
        tail = f"<Info>\r\n<AlarmType>{alarm_type}</AlarmType>"
        if event_type is not None:
            tail += (
                f"\r\n<AlarmTypeParam>\r\n<EventType>{event_type}</EventType>\r\n</AlarmTypeParam>"
            )
        tail += "\r\n</Info>"
    return _document(
        "Notify",
        [
            ("CmdType", "Alarm"),
            ("SN", str(sn)),
            ("DeviceID", channel_id),
            ("AlarmPriority", str(priority)),
            ("AlarmMethod", str(method)),
            ("AlarmTime", when),
            ("AlarmDescription", description),
            ("Longitude", None if lon is None else _num(lon)),
            ("Latitude", None if lat is None else _num(lat)),
        ],
        tail,
    )


def control_response(sn: int, device_id: str, ok: bool, cmd_type: str = "DeviceControl") -> bytes:
    """The answer to a DeviceControl (§A.2.6.1): Result OK or ERROR."""
    return _document(
        "Response",
        [
            ("CmdType", cmd_type),
            ("SN", str(sn)),
            ("DeviceID", device_id),
            ("Result", "OK" if ok else "ERROR"),
        ],
    )


@dataclass(frozen=True)
class ManscdpRequest:
    """A parsed MANSCDP body: the root (Query, Control, Notify, Response), CmdType, SN,
    DeviceID, every other leaf of the root in ``fields``, and the leaves of ``<Info>``."""

    root: str
    cmd_type: str
    sn: int
    device_id: str
    fields: dict[str, str] = field(default_factory=dict)
    info: dict[str, str] = field(default_factory=dict)

    @property
    def guard_cmd(self) -> str | None:
        """``SetGuard`` or ``ResetGuard`` of a DeviceControl, else None."""
        return self.fields.get("GuardCmd")

    @property
    def alarm_cmd(self) -> str | None:
        """``ResetAlarm`` of a DeviceControl, else None."""
        return self.fields.get("AlarmCmd")


def decode_body(body: bytes) -> str:
    """Text of a body per its declaration: GB2312/GBK/GB18030 are read as GB18030 (a superset),
    UTF-8 as UTF-8 (falling back to GB18030: devices mislabel), no declaration: UTF-8 first."""
    m = _DECL_RE.match(body)
    declared = m.group(1).decode("ascii").lower().replace("_", "-") if m else ""
    order = (
        ["gb18030", "utf-8"] if declared in ("gb2312", "gbk", "gb18030") else ["utf-8", "gb18030"]
    )
    for enc in order:
        try:
            return body.decode(enc)
        except UnicodeDecodeError:
            continue
    raise ManscdpError(f"body is neither GB18030 nor UTF-8 (declared {declared or 'none'})")


def xml_root(text: str) -> ET.Element:
    """Parse XML text (declaration stripped); DTDs and entities are refused (no expansion)."""
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise ManscdpError("DTDs are not accepted in MANSCDP bodies")
    try:
        return ET.fromstring(_ANY_DECL_RE.sub("", text, count=1).strip())
    except ET.ParseError as exc:
        raise ManscdpError(f"not well-formed XML: {exc}") from exc


def _text(el: ET.Element | None) -> str:
    return "" if el is None else (el.text or "").strip()


def parse_request(body: bytes) -> ManscdpRequest:
    """Parse a body the superior sent (Query/Control/Notify/Response); raise
    :class:`ManscdpError` if it has no CmdType or its SN is not an integer. A bare ``&``
    (Hikvision) is read as a literal ``&``.

    >>> r = parse_request(b'<?xml version="1.0" encoding="GB2312"?><Control><CmdType>'
    ...     b'DeviceControl</CmdType><SN>11</SN><DeviceID>34020000002000000001</DeviceID>'
    ...     b'<GuardCmd>SetGuard</GuardCmd></Control>')
    >>> r.cmd_type, r.sn, r.guard_cmd, r.alarm_cmd
    ('DeviceControl', 11, 'SetGuard', None)
    """
    root = xml_root(_BARE_AMP_RE.sub("&amp;", decode_body(body)))
    cmd = _text(root.find("CmdType"))
    if not cmd:
        raise ManscdpError(f"<{root.tag}> has no CmdType")
    sn_text = _text(root.find("SN"))
    if not re.fullmatch(r"\d+", sn_text):
        raise ManscdpError(f"SN {sn_text!r} is not an integer")
    fields = {c.tag: _text(c) for c in root if len(c) == 0}
    info_el = root.find("Info")
    if info_el is None:
        info_el = root.find("info")
    info = {} if info_el is None else {c.tag: _text(c) for c in info_el.iter() if len(c) == 0}
    return ManscdpRequest(
        root=root.tag,
        cmd_type=cmd,
        sn=int(sn_text),
        device_id=_text(root.find("DeviceID")),
        fields=fields,
        info=info,
    )
