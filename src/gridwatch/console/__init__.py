"""The command-centre console and the responders' phone view (``gridwatch console``).

An aiohttp application (:mod:`.app`) over one service connection to NATS: the alert wall fed
live from JetStream (:mod:`.feed`), alert detail with the case history and actions, camera
health, a map, and the responder PWA under ``/m``. Every request is confined to the grids its
user may see by one object, :class:`.scope.Scope`. Static assets (plain HTML, CSS and JS, no
build step, nothing from a CDN) ship in ``static/``.

Kept import-light: :mod:`gridwatch.config` imports :mod:`.settings` from here.
"""
