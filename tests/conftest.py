"""Fixtures that start real servers (nats-server, GStreamer RTSP) live in tests/plugins."""

from __future__ import annotations

import os

pytest_plugins = [
    "tests.plugins.nats_fixtures",
    "tests.plugins.rtsp_fixtures",
    "tests.plugins.browser_fixtures",
    "tests.plugins.netns",
    "tests.plugins.nats_cluster",
]

# Model hubs are unreachable here: never let ultralytics try.
os.environ.setdefault("YOLO_OFFLINE", "1")
