"""Every example in a gridwatch docstring runs and gives what it shows.

Docstrings carry examples so a reader can see a function at work; an example nobody runs drifts
from the code (one did: a timestamp that was off by a year). This runs them all, module by module,
so a wrong one names its module; the benchmarks' (``bench``) too (one there claimed 273 calls of
a mix of 211).
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import bench
import pytest

import gridwatch
import gridwatch_devtools

# Run by /usr/bin/python3 (GStreamer's Python bindings), not importable from the venv.
NOT_IMPORTABLE = {"gridwatch_devtools.gst_rtsp_serve"}

MODULES = sorted(
    m.name
    for pkg in (gridwatch, gridwatch_devtools, bench)
    for m in pkgutil.walk_packages(pkg.__path__, f"{pkg.__name__}.")
    if m.name not in NOT_IMPORTABLE
)


def test_the_package_has_examples() -> None:
    attempted = sum(
        len(t.examples)
        for name in MODULES
        for t in doctest.DocTestFinder().find(importlib.import_module(name))
    )
    assert attempted >= 100, attempted


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
