"""The message-bus layer: NATS names, infrastructure, request/reply and the typed messages that
cross process boundaries.

* :mod:`gridwatch.bus.names`: every subject, stream, bucket, object store and durable name.
* :mod:`gridwatch.bus.catalog`: streams, KV buckets and object stores declared once as data.
* :mod:`gridwatch.bus.infra`: their convergence (create if missing, update what is owned).
* :mod:`gridwatch.bus.rpc`: typed request/reply (pydantic request, pydantic ok/error reply).
* :mod:`gridwatch.bus.messages`: versioned messages (camera health, case replies, snapshot
  metadata).
* :mod:`gridwatch.bus.connect`: the one ``connect()`` (credentials, per-user inbox, TLS,
  endless reconnects for services, fail-fast for CLIs).
* :mod:`gridwatch.bus.consumers`: the durable pull loop and the ephemeral, ordered readers.
* :mod:`gridwatch.bus.service`: the service base (start, drain, stop; subscriptions and tasks
  tracked).
"""
