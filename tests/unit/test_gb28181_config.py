"""The gb28181 config section and per-camera gb28181_id through the real config loader:
each mistake comes out with file:line and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gridwatch.cli.main import app
from gridwatch.config.loading import ConfigError, parse_config
from gridwatch.gb28181.alarm_map import AlarmCode
from gridwatch.gb28181.settings import PASSWORD_ENV, Gb28181Settings

HEAD = """\
grids: [{{id: north, name: 北区}}, {{id: south}}]
gb28181:
  enabled: {enabled}
  device_id: {device_id}
  superior: {{id: "34020000002000000002", host: 10.0.0.1, transport: {transport}}}
{extra}cameras:
"""


def _cam(i: int, gb_id: str | None) -> str:
    line = f"  - {{id: cam{i}, grid: north, url: rtsp://127.0.0.1/{i}"
    return line + (f", gb28181_id: {gb_id!s}}}\n" if gb_id is not None else "}\n")


def _doc(
    ids: list[str | None],
    *,
    enabled: str = "true",
    device_id: str = '"34020000002000000001"',
    transport: str = "udp",
    extra: str = "",
) -> str:
    head = HEAD.format(enabled=enabled, device_id=device_id, transport=transport, extra=extra)
    return head + ("".join(_cam(i, g) for i, g in enumerate(ids)) or "  []\n")


def _issues(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "gb.yaml")
    return [str(i) for i in info.value.issues]


def test_valid_section_loads() -> None:
    cfg = parse_config(
        _doc(
            ['"34020000001320000001"', "34020000001310000002"],  # unquoted: a YAML int
            extra="  version: 2022\n  password: s3cret\n  alarm_types: {fall: {alarm_type: 2}}\n",
        ),
        "gb.yaml",
    )
    gb = cfg.gb28181
    assert gb is not None
    assert gb.enabled
    assert gb.version == "2022"
    assert gb.superior.domain == "3402000000"
    assert gb.superior.port == 5060
    assert [c.gb28181_id for c in cfg.cameras] == ["34020000001320000001", "34020000001310000002"]
    assert gb.resolved_password() == "s3cret"
    assert "s3cret" not in repr(gb)
    assert gb.alarm_table()["fall"] == AlarmCode(5, 2, None)
    assert gb.alarm_table()["intrusion"] == AlarmCode(5, 6, 1)
    assert gb.effective_time_zone(cfg.timezone) == "Asia/Shanghai"


def test_section_is_optional_and_disabled_needs_no_camera_ids() -> None:
    assert parse_config("grids: [{id: g}]\n", "x.yaml").gb28181 is None
    cfg = parse_config(_doc([None, None], enabled="false"), "gb.yaml")
    assert cfg.gb28181 is not None
    assert not cfg.gb28181.enabled


def test_password_env_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    gb = parse_config(_doc([], enabled="false"), "gb.yaml").gb28181
    assert gb is not None
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    with pytest.raises(RuntimeError, match=PASSWORD_ENV):
        gb.resolved_password()
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    assert gb.resolved_password() == "from-env"


def test_camera_id_errors_with_file_line() -> None:
    text = _doc(
        [
            '"34020000001320000001"',
            '"34020000001320000001"',
            None,
            '"34020000002000000009"',
            '"123"',
        ]
    )
    issues = _issues(text)
    assert (
        "gb.yaml:10:54: cameras[3].gb28181_id: '34020000002000000009' has type code 200"
        in issues[0]
    )
    assert issues[1].startswith(
        "gb.yaml:11:54: cameras[4].gb28181_id: '123' is not a GB/T 28181 id"
    )
    assert (
        "gb.yaml:8:54: cameras[1].gb28181_id: duplicate gb28181_id '34020000001320000001' "
        "(also cameras[0])" in issues
    )
    assert any(
        i.startswith("gb.yaml:9:6: cameras[2].id: gb28181.enabled needs a gb28181_id")
        for i in issues
    )
    assert len(issues) == 4


def test_camera_id_equal_to_platform_id() -> None:
    issues = _issues(_doc(['"34020000002000000001"']))
    assert any("is a platform id" in i for i in issues)


def test_derived_camera_ids_allowed_when_configured() -> None:
    cfg = parse_config(
        _doc([None, '"34020000001320000001"'], extra="  derive_camera_ids: true\n"), "gb.yaml"
    )
    gb = cfg.gb28181
    assert gb is not None
    derived = gb.channel_id("cam0", None)
    assert derived is not None
    assert derived[10:13] == "132"
    assert gb.channel_id("cam1", "34020000001320000001") == "34020000001320000001"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (
            {"device_id": '"34020000001320000001"'},
            "gb.yaml:4:3: gb28181.device_id: '34020000001320000001' has type code 132",
        ),
        (
            {"transport": "sctp"},
            "gb.yaml:5:58: gb28181.superior.transport: Input should be 'udp' or 'tcp'",
        ),
        (
            {"extra": "  version: 2019\n"},
            "gb.yaml:6:3: gb28181.version: Input should be '2016' or '2022'",
        ),
        (
            {"extra": "  expires_s: 10\n"},
            "gb.yaml:6:3: gb28181.expires_s: Input should be greater than or equal to 60",
        ),
        (
            {"extra": "  time_zone: Mars/Base\n"},
            "gb.yaml:6:3: gb28181.time_zone: unknown time zone 'Mars/Base'",
        ),
        (
            {"extra": "  civil_code: '123'\n"},
            "gb.yaml:6:3: gb28181.civil_code: civil code '123' must be 2, 4, 6 or 8 digits",
        ),
        (
            {"extra": "  alarm_types: {bogus: {alarm_type: 1}}\n"},
            "gb.yaml:6:3: gb28181.alarm_types: unknown rule type(s) bogus",
        ),
        (
            {"extra": "  alarm_types: {crowding: {alarm_method: 9}}\n"},
            "gb.yaml:6:28: gb28181.alarm_types.crowding.alarm_method: "
            "Input should be less than or equal to 7",
        ),
        ({"extra": "  pasword: x\n"}, "gb.yaml:6:3: gb28181.pasword: unknown field 'pasword'"),
    ],
)
def test_section_errors_with_file_line(kwargs: dict[str, str], expected: str) -> None:
    issues = _issues(_doc(['"34020000001320000001"'], **kwargs))
    assert any(i.startswith(expected) for i in issues), issues


def test_superior_must_differ_and_be_a_platform() -> None:
    with pytest.raises(ValueError, match="must differ"):
        Gb28181Settings.model_validate(
            {
                "device_id": "34020000002000000001",
                "superior": {"id": "34020000002000000001", "host": "h"},
            }
        )
    issues = _issues(
        textwrap.dedent(
            """\
            gb28181:
              device_id: "34020000002000000001"
              superior: {id: "34020000001320000002", host: h}
            """
        )
    )
    assert issues[0].startswith(
        "gb.yaml:3:14: gb28181.superior.id: '34020000001320000002' has type code 132"
    )


def test_errors_come_out_of_gridwatch_config_check(tmp_path: Path) -> None:
    """The operator's view: `gridwatch config check FILE` prints file:line: field: message."""
    path = tmp_path / "deploy.yaml"
    path.write_text(_doc(['"34020000001320000001"', '"34020000001320000001"']), encoding="utf-8")
    result = CliRunner().invoke(app, ["config", "check", str(path)])
    assert result.exit_code != 0
    assert (
        f"{path}:8:54: cameras[1].gb28181_id: duplicate gb28181_id '34020000001320000001'"
        in result.output
    )
    path.write_text(_doc(['"34020000001320000001"', '"34020000001310000002"']), encoding="utf-8")
    ok = CliRunner().invoke(app, ["config", "check", str(path)])
    assert ok.exit_code == 0, ok.output
