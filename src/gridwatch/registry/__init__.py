"""The live camera registry: NATS KV ``gw_cameras``, hot reload, import/export, probe.

* :mod:`~gridwatch.registry.store` — one key per camera, history kept, compare-and-set edits;
* :mod:`~gridwatch.registry.watcher` — a worker follows the bucket and converges its cameras;
* :mod:`~gridwatch.registry.files` — CSV/YAML import with located errors, YAML/CSV export;
* :mod:`~gridwatch.registry.probe` — open a stream and report what it sends, or why not.

``gridwatch camera ...`` (:mod:`gridwatch.cli.camera_cmd`) is the ops engineer's way in.
"""
