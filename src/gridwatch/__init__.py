"""gridwatch: video event processing for city camera networks."""

__version__ = "0.1.0"
