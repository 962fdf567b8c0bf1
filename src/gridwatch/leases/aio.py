"""Stopping asyncio tasks reliably.

On Python 3.11 ``asyncio.wait_for`` can swallow a cancellation that arrives just as the awaited
result does (fixed in 3.12), leaving a loop running after ``task.cancel()``; the lease loops
wait in ``wait_for`` all the time, so they are cancelled until they are really gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

log = logging.getLogger(__name__)


async def cancel_and_wait(tasks: Iterable[asyncio.Task[None]], within_s: float = 5.0) -> None:
    """Cancel ``tasks`` (again and again, see above) until all are done or ``within_s`` passed."""
    pending = {t for t in tasks if not t.done()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while pending and loop.time() < deadline:
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)
    for t in pending:
        log.warning("task %s did not stop within %.1fs", t.get_name(), within_s)
    for t in tasks:
        if t.done() and not t.cancelled():
            with contextlib.suppress(BaseException):
                t.result()
