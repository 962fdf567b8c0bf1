"""A model of how WVP-GB28181-pro (the most used open GB/T 28181 platform) reads a MANSCDP
body, to test our bodies against in the absence of an installable independent checker.

Written from WVP's own parsing code (``SIPRequestProcessorParent.getRootElement``,
``XmlUtil.getText``/``channelContentHander``, ``AlarmNotifyMessageHandler``), not from ours, so a
body we build that WVP would misread fails here. The rules it models:

1. every ``&`` byte that does not start ``&lt;`` ``&gt;`` ``&amp;`` ``&apos;`` ``&quot;`` is
   removed *before* parsing (so ``&#38;`` would arrive as ``#38;``);
2. bytes are decoded as GB2312 (the default per-device charset), falling back to GB18030;
3. text values are trimmed (``getText(...).trim()``);
4. ``SN``, ``SumNum``, ``Num`` and a catalog item's ``Parental``, ``SafetyWay``,
   ``RegisterWay``, ``Certifiable``, ``ErrCode``, ``Port`` go through ``Integer.parseInt``:
   anything but an optionally signed decimal int32 is an error;
5. ``Longitude``/``Latitude`` that are not decimal numbers silently become 0.0;
6. a channel's ``Status`` ON/On/ONLINE/OK is 1, OFF/Off/OFFLINE is 0 (anything else: error
   here, "unknown" in WVP); a ``ParentID`` with ``/`` keeps its last segment;
7. ``AlarmTime`` must be ``yyyy-MM-dd'T'HH:mm:ss`` (else the alarm is dropped); ``AlarmType``
   is read from ``<Info>`` (``<info>`` accepted too) when ``AlarmMethod`` contains 5.

>>> wvp_parse(b'<?xml version="1.0" encoding="GB2312"?><Notify><CmdType>Keepalive</CmdType>'
...           b'<SN> 4 </SN><DeviceID>1 & 2</DeviceID></Notify>')
{'root': 'Notify', 'CmdType': 'Keepalive', 'SN': 4, 'DeviceID': '1  2'}
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

_NAMED = (b"&lt;", b"&gt;", b"&amp;", b"&apos;", b"&quot;")
_JAVA_INT = re.compile(r"[+-]?\d+")
_JAVA_DOUBLE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_ALARM_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
_INT_ITEM_FIELDS = ("Parental", "SafetyWay", "RegisterWay", "Certifiable", "ErrCode", "Port")
_LIST_ELEMENTS = ("DeviceList", "Alarmstatus", "RecordList")


class WvpParseError(ValueError):
    """WVP would reject (or misread) this body."""


def strip_bare_ampersands(body: bytes) -> bytes:
    """WVP's byte filter: drop ``&`` unless it starts one of the five named entities.

    >>> strip_bare_ampersands(b"a&b &amp; &#38;")
    b'ab &amp; #38;'
    """
    out = bytearray()
    for i, b in enumerate(body):
        if b == 0x26 and not any(body.startswith(n, i) for n in _NAMED):
            continue
        out.append(b)
    return bytes(out)


def _java_int(value: str, what: str) -> int:
    if not _JAVA_INT.fullmatch(value) or not -(2**31) <= int(value) < 2**31:
        raise WvpParseError(f"{what} {value!r}: Integer.parseInt fails")
    return int(value)


def _java_double_or_zero(value: str) -> float:
    return float(value) if _JAVA_DOUBLE.fullmatch(value) else 0.0


def _decode(body: bytes) -> str:
    try:
        return body.decode("gb2312")
    except UnicodeDecodeError:
        try:
            return body.decode("gb18030")
        except UnicodeDecodeError as exc:
            raise WvpParseError(f"neither GB2312 nor GB18030: {exc}") from exc


def _leaf_map(el: ET.Element) -> dict[str, Any]:
    return {c.tag: (c.text or "").strip() for c in el if len(c) == 0}


def _item(el: ET.Element) -> dict[str, Any]:
    item = _leaf_map(el)
    for name in _INT_ITEM_FIELDS:
        if item.get(name):
            item[name] = _java_int(item[name], name)
    for name in ("Longitude", "Latitude"):
        if name in item:
            item[name] = _java_double_or_zero(item[name])
    if "Status" in item:
        status = item["Status"]
        if status in ("ON", "On", "ONLINE", "OK"):
            item["Status"] = 1
        elif status in ("OFF", "Off", "OFFLINE"):
            item["Status"] = 0
        elif "DutyStatus" not in item:
            raise WvpParseError(f"channel Status {status!r} is neither ON nor OFF")
    if isinstance(item.get("ParentID"), str) and "/" in item["ParentID"]:
        item["ParentID"] = item["ParentID"].rsplit("/", 1)[1]
    return item


def wvp_parse(body: bytes) -> dict[str, Any]:
    """What WVP reads from ``body``: the root's tag, its leaves (trimmed; SN and SumNum as
    int; Longitude/Latitude as float), each list element (``DeviceList``, ``Alarmstatus``) as
    ``{"Num": int, "Item": [...]}`` and ``Info`` as a dict (``AlarmTypeParam`` flattened).
    Raises :class:`WvpParseError` where WVP would fail or drop the message.
    """
    text = _decode(strip_bare_ampersands(body))
    if "<!DOCTYPE" in text:
        raise WvpParseError("DTD in body")
    text = re.sub(r"^\s*<\?xml[^>]*\?>", "", text, count=1).strip()
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise WvpParseError(f"dom4j would fail: {exc}") from exc
    out: dict[str, Any] = {"root": root.tag}
    out.update(_leaf_map(root))
    if "SN" not in out:
        raise WvpParseError("no SN")
    out["SN"] = _java_int(out["SN"], "SN")
    if "SumNum" in out:
        out["SumNum"] = _java_int(out["SumNum"], "SumNum")
    for name in ("Longitude", "Latitude"):
        if name in out:
            out[name] = _java_double_or_zero(out[name])
    for child in root:
        if child.tag in _LIST_ELEMENTS:
            num = _java_int((child.get("Num") or "").strip(), f"{child.tag} Num")
            items = [_item(c) for c in child if c.tag == "Item"]
            out[child.tag] = {"Num": num, "Item": items}
        elif child.tag in ("Info", "info"):
            info = {c.tag: (c.text or "").strip() for c in child.iter() if len(c) == 0}
            out["Info"] = info
    if out.get("CmdType") == "Alarm":
        if not _ALARM_TIME.fullmatch(str(out.get("AlarmTime", ""))):
            raise WvpParseError(f"AlarmTime {out.get('AlarmTime')!r} is not yyyy-MM-ddTHH:mm:ss")
        if "5" in str(out.get("AlarmMethod", "")):
            out["AlarmType"] = out.get("Info", {}).get("AlarmType")
    return out
