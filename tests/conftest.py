"""Fixtures that start real servers (nats-server, GStreamer RTSP) live in tests/plugins."""

from __future__ import annotations

import os

pytest_plugins = ["tests.plugins.nats_fixtures", "tests.plugins.rtsp_fixtures"]

# Model hubs are unreachable here: never let ultralytics try.
os.environ.setdefault("YOLO_OFFLINE", "1")
