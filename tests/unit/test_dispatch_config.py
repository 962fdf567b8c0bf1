"""The dispatch sections of the config: users, cases, notify, retention and spool."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridwatch.auth.natsconf import build_nats_config
from gridwatch.auth.passwords import hash_password, verify_password
from gridwatch.config import ConfigError, load_config, parse_config

H = "$2b$04$" + "a" * 53
EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "dispatch-example.yaml"


def test_example_is_valid_and_generates_a_server_config(tmp_path: Path) -> None:
    # as shipped its password hashes are placeholders that no command accepts
    with pytest.raises(ConfigError, match="must be a bcrypt hash"):
        load_config(EXAMPLE)
    mine = tmp_path / "dispatch.yaml"
    mine.write_text(EXAMPLE.read_text().replace("REPLACE-ME: gridwatch users hash-password", H))
    cfg = load_config(mine)
    assert cfg.alerts.snapshot_retention_days == 30
    assert cfg.cases.deadline("critical").acknowledge_s == 30
    assert cfg.notify.webhooks[0].events == ["alert.raised", "case.escalated"]
    conf = build_nats_config(cfg, store_dir="/var/lib/nats")
    assert conf["listen"] == "127.0.0.1:4222"
    assert conf["jetstream"] == {"store_dir": "/var/lib/nats"}
    assert [u["user"] for u in conf["authorization"]["users"]] == [
        "op-zhang", "aux-li", "lead-wang", "gw-worker",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("users", "expected"),
    [
        (f'[{{name: a, role: responder, password_hash: "{H}"}}]', "a responder needs a grid"),
        (f'[{{name: a, role: operator, grid: g1, password_hash: "{H}"}}]', "remove 'grid'"),
        (f'[{{name: a, role: responder, grid: g9, password_hash: "{H}"}}]', "unknown grid 'g9'"),
        ('[{name: a, role: operator, password_hash: "secret"}]', "must be a bcrypt hash"),
        (f'[{{name: a, role: chief, password_hash: "{H}"}}]', "Input should be"),
        (
            f'[{{name: a, role: operator, password_hash: "{H}"}}, '
            f'{{name: a, role: admin, password_hash: "{H}"}}]',
            "duplicate user name 'a'",
        ),
        (
            "[{name: a, role: responder, grid: g1, duty_schedule: nights, "
            f'password_hash: "{H}"}}]',
            "unknown schedule 'nights'",
        ),
    ],
)
def test_bad_users_are_reported_with_their_place(users: str, expected: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(f"grids: [{{id: g1}}]\nusers: {users}\n", "u.yaml")
    assert expected in str(e.value)
    assert str(e.value).startswith("u.yaml:2:")


def test_webhook_needs_exactly_one_secret_and_deadlines_are_ordered() -> None:
    with pytest.raises(ConfigError, match="exactly one of secret and secret_env"):
        parse_config("notify: {webhooks: [{name: h, url: 'https://x.example/h'}]}")
    with pytest.raises(ConfigError, match="on_scene_s cannot be shorter"):
        parse_config("cases: {deadlines: {warning: {acknowledge_s: 60, on_scene_s: 30}}}")


def test_password_hash_roundtrip() -> None:
    h = hash_password("correct horse", rounds=4)
    assert verify_password("correct horse", h)
    assert not verify_password("wrong", h)
    with pytest.raises(ValueError, match="72 bytes"):
        hash_password("x" * 73, rounds=4)
