"""The worker stage: the composition root (:mod:`.worker`), the one camera loop
(:mod:`.pipeline`, live and replay) and the Prometheus figures (:mod:`.metrics`)."""

from gridwatch.worker.worker import Worker

__all__ = ["Worker"]
