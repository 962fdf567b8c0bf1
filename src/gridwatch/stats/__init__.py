"""People-flow statistics: per-camera minute records of zone occupancy, line crossings and a
heat grid of where people stand, published to ``GW_STATS`` and rolled up per quarter, hour and
day (``docs/statistics.md``)."""
