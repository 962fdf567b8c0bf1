"""Ground-plane calibration: image points → metres on the ground (:mod:`.ground`), and the
per-camera ``calibration:`` config section (:mod:`.settings`)."""
