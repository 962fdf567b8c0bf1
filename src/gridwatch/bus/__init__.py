"""The message-bus layer: NATS names, infrastructure, request/reply and the typed messages that
cross process boundaries.

* :mod:`gridwatch.bus.names`: every subject, stream, bucket, object store and durable name.
* :mod:`gridwatch.bus.catalog`: streams, KV buckets and object stores declared once as data.
* :mod:`gridwatch.bus.infra`: their convergence (create if missing, update what is owned).
* :mod:`gridwatch.bus.rpc`: typed request/reply (pydantic request, pydantic ok/error reply).
* :mod:`gridwatch.bus.messages`: versioned messages (camera health, case replies, snapshot
  metadata).
"""
