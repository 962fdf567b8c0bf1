"""Reproducible benchmarks; each prints a table (``./run bench --help``)."""
