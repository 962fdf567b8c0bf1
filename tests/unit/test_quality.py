"""The project's own code passes its linters: ruff (lint + format) and mypy --strict.

Run as tests so CI enforces them with the same command as everything else.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PATHS = [p for p in ("src", "tests", "bench") if (REPO / p).exists()]


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)


def test_ruff_lint() -> None:
    r = run(str(BIN / "ruff"), "check", "--no-cache", "--output-format", "concise", *PATHS)
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_format() -> None:
    r = run(str(BIN / "ruff"), "format", "--no-cache", "--check", *PATHS)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.timeout(900)
def test_mypy_strict() -> None:
    r = run(str(BIN / "mypy"), "--cache-dir", str(REPO / ".cache" / "mypy"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Success" in r.stdout
