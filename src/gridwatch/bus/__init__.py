"""The message-bus layer: NATS names, infrastructure, request/reply and the typed messages that
cross process boundaries.

* :mod:`gridwatch.bus.names`: every subject, stream, bucket, object store and durable name.
* :mod:`gridwatch.bus.catalog`: streams, KV buckets and object stores declared once as data.
* :mod:`gridwatch.bus.infra`: their convergence (create if missing, update what is owned).
* :mod:`gridwatch.bus.rpc`: typed request/reply (pydantic request; a pydantic ok/error reply,
  or bytes with headers, errors in ``Gw-Error``/``Gw-Message``: snapshots).
* :mod:`gridwatch.bus.messages`: versioned messages (camera health, case replies, snapshot
  metadata).
* :mod:`gridwatch.bus.connect`: the one ``connect()`` (credentials, per-user inbox, TLS,
  endless reconnects for services, fail-fast for CLIs).
* :mod:`gridwatch.bus.consumers`: the durable pull loop and the ephemeral, ordered readers
  (one follower: the console's feeds raise on a gap, the alert tail heals it).
* :mod:`gridwatch.bus.service`: the service base (start, drain, stop; subscriptions and tasks
  tracked).
"""
