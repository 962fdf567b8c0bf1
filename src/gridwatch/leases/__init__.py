"""Scale-out: cameras shared across many workers through leases in NATS KV.

``gw_workers`` holds one renewed session per worker (capacity, what it runs), ``gw_leases`` one
key per camera naming the session that holds it. Every write is compare-and-set on the key's
revision; a worker that cannot renew stops its cameras before its leases can expire. See
:mod:`gridwatch.leases.manager` for the protocol and docs/scaling.md for the safety argument.

Importing this package is cheap (the config imports :mod:`gridwatch.leases.settings`).
"""

from gridwatch.leases.records import LEASES_BUCKET, WORKERS_BUCKET
from gridwatch.leases.settings import LeaseConfig

__all__ = ["LEASES_BUCKET", "WORKERS_BUCKET", "LeaseConfig"]
