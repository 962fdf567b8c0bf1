"""Publish alerts to JetStream: acknowledged, retried, and stored once.

An alert that did not reach the command centre is a missed incident, so a publish only counts
when JetStream has acknowledged it (the message is on disk in ``GW_ALERTS``). Between a worker
and the server things fail transiently (a server restart, a reconnect, a leader election), so
the publisher retries with capped, jittered exponential backoff. Retrying is safe because each
message carries ``Nats-Msg-Id: alert.message_id``: JetStream drops a copy it has already stored
within the stream's duplicate window, and nats.py may even flush several buffered attempts at
once after a reconnect. The duplicate window (120 s by default) must therefore be longer than
the whole retry budget (``max_attempts × (ack_timeout + backoff_max)``, about 40 s by default).

Errors that retrying cannot fix (a closed connection, a rejected message) fail at once with
:class:`PublishError`; so does running out of attempts. What the caller does then (spool to
disk, alarm) is its decision, not this module's.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js import api as js_api

from gridwatch.alerts.snapshots import SnapshotStore, snapshot_headers
from gridwatch.alerts.subjects import ALERTS_STREAM
from gridwatch.model import Alert

log = logging.getLogger(__name__)

T = TypeVar("T")

MSG_ID_HEADER = "Nats-Msg-Id"

RETRYABLE_ERRORS: tuple[type[BaseException], ...] = (
    TimeoutError,  # nats.errors.TimeoutError and asyncio's: no ack in time
    nats.js.errors.NoStreamResponseError,  # no responders: JetStream not up (yet) after restart
    nats.js.errors.ServiceUnavailableError,  # 503: JetStream temporarily unavailable
    nats.errors.OutboundBufferLimitError,  # disconnected and the reconnect buffer is full
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    nats.errors.NoRespondersError,
)
"""Failures that may go away by waiting; everything else fails the publish immediately."""


class PublishError(RuntimeError):
    """An alert (or its snapshot) could not be stored in JetStream.

    ``attempts`` says how often it was tried; ``__cause__`` is the last underlying error.
    """

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


@dataclass(frozen=True, slots=True)
class PublishResult:
    """The JetStream acknowledgement of one alert, plus how it was obtained."""

    stream: str
    seq: int
    duplicate: bool
    """True when JetStream already had this ``message_id`` (the stored copy is at ``seq``)."""
    attempts: int
    elapsed_s: float
    """From the first try to the ack, retries and backoff included."""


@dataclass(slots=True)
class PublishStats:
    """Counters of one :class:`AlertPublisher`, for health reporting and tests."""

    published: int = 0
    """Acknowledged alerts, duplicates included."""
    duplicates: int = 0
    retries: int = 0
    failures: int = 0
    snapshots_stored: int = 0
    snapshot_failures: int = 0


class AlertPublisher:
    """Publishes :class:`Alert` messages on ``alert.subject()`` and waits for JetStream's ack.

    ``nc`` is a connected nats.py client; the publisher neither connects nor closes it.
    ``ack_timeout`` bounds each attempt; ``max_attempts`` bounds the retries; backoff between
    attempts doubles from ``backoff_initial`` up to ``backoff_max``, each delay scaled by a
    random factor in [0.5, 1] so that many workers reconnecting together do not retry in step.
    ``snapshots`` is the store :meth:`publish_with_snapshot` writes to (opened on first use
    when not given; the bucket must exist: see ``streams.ensure_alert_infra``). A snapshot gets
    fewer tries (``snapshot_attempts``) than its alert: a failing picture must not hold the
    alert back for long.
    """

    def __init__(
        self,
        nc: NATS,
        *,
        ack_timeout: float = 2.0,
        max_attempts: int = 10,
        backoff_initial: float = 0.05,
        backoff_max: float = 2.0,
        snapshots: SnapshotStore | None = None,
        snapshot_attempts: int = 3,
        expected_stream: str | None = ALERTS_STREAM,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self._nc = nc
        self._js = nc.jetstream()
        self.ack_timeout = ack_timeout
        self.max_attempts = max_attempts
        self.snapshot_attempts = snapshot_attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.expected_stream = expected_stream
        self._snapshots = snapshots
        self._rng = random.Random()
        self.stats = PublishStats()

    def backoff(self, attempt: int) -> float:
        """Delay after failed attempt number ``attempt`` (1-based)."""
        base = min(self.backoff_max, self.backoff_initial * 2.0 ** (attempt - 1))
        return float(base * self._rng.uniform(0.5, 1.0))

    async def _retrying(
        self, what: str, op: Callable[[], Awaitable[T]], max_attempts: int
    ) -> tuple[T, int]:
        """Run ``op`` until it succeeds, retrying :data:`RETRYABLE_ERRORS` with backoff."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return await op(), attempt
            except RETRYABLE_ERRORS as e:
                if attempt >= max_attempts:
                    raise PublishError(
                        f"{what}: no JetStream ack after {attempt} attempts "
                        f"(last error: {type(e).__name__}: {e})",
                        attempts=attempt,
                    ) from e
                delay = self.backoff(attempt)
                self.stats.retries += 1
                log.warning(
                    "%s: attempt %d/%d failed (%s), retrying in %.2fs",
                    what,
                    attempt,
                    max_attempts,
                    type(e).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
            except (nats.errors.Error, nats.js.errors.Error) as e:
                raise PublishError(f"{what}: {type(e).__name__}: {e}", attempts=attempt) from e

    async def publish(self, alert: Alert) -> PublishResult:
        """Publish ``alert`` and return once JetStream has stored it (or had it already).

        Raises :class:`PublishError` when it cannot be stored.
        """
        subject = alert.subject()
        payload = alert.model_dump_json().encode()
        t0 = time.perf_counter()

        async def attempt() -> js_api.PubAck:
            # A fresh dict each time: nats.py adds the expected-stream header to it in place.
            headers = {MSG_ID_HEADER: alert.message_id}
            return await self._js.publish(
                subject,
                payload,
                timeout=self.ack_timeout,
                stream=self.expected_stream,
                headers=headers,
            )

        try:
            ack, attempts = await self._retrying(
                f"alert {alert.message_id}", attempt, self.max_attempts
            )
        except PublishError:
            self.stats.failures += 1
            raise
        duplicate = bool(ack.duplicate)  # None, not False, on a first publish
        self.stats.published += 1
        if duplicate:
            self.stats.duplicates += 1
            log.info(
                "alert %s already stored (%s seq %d): duplicate dropped by JetStream",
                alert.message_id,
                ack.stream,
                ack.seq,
            )
        else:
            log.debug("alert %s stored at %s seq %d", alert.message_id, ack.stream, ack.seq)
        return PublishResult(
            stream=ack.stream,
            seq=ack.seq,
            duplicate=duplicate,
            attempts=attempts,
            elapsed_s=time.perf_counter() - t0,
        )

    async def _snapshot_store(self) -> SnapshotStore:
        if self._snapshots is None:
            self._snapshots = await SnapshotStore.open(self._js)
        return self._snapshots

    async def publish_with_snapshot(self, alert: Alert, jpeg: bytes) -> PublishResult:
        """Store ``jpeg`` under ``alert.snapshot``, then publish ``alert``.

        In that order, so that whoever receives the alert can fetch its picture at once. Build
        the alert with ``snapshot=snapshot_name_for(...)`` (see :mod:`.snapshots`). If the
        snapshot cannot be stored, the alert is still published, with ``snapshot=None``: an
        incident without a picture beats a missed incident.
        """
        name = alert.snapshot
        if name is None:
            raise ValueError("alert.snapshot must name the object to store the JPEG under")
        try:
            store = await self._snapshot_store()
            await self._retrying(
                f"snapshot {name}",
                lambda: store.put(name, jpeg, headers=snapshot_headers(alert)),
                self.snapshot_attempts,
            )
            self.stats.snapshots_stored += 1
        except (PublishError, nats.js.errors.Error, nats.errors.Error) as e:
            self.stats.snapshot_failures += 1
            log.error("snapshot %s not stored (%s); publishing the alert without it", name, e)
            alert = alert.model_copy(update={"snapshot": None})
        return await self.publish(alert)
