"""ONVIF, the little of it gridwatch needs: WS-Discovery and the RTSP URIs of media profiles.

:mod:`~gridwatch.onvif.discovery` finds cameras on the local segment, :mod:`~gridwatch.onvif.media`
asks one for its profiles and stream URIs, :mod:`~gridwatch.onvif.simulator` is a camera that
answers both, for tests run inside a private network namespace.
"""
