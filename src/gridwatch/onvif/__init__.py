"""ONVIF, the little of it gridwatch needs: WS-Discovery and the RTSP URIs of media profiles.

:mod:`~gridwatch.onvif.discovery` finds cameras on the local segment (``wsdiscovery``),
:mod:`~gridwatch.onvif.media` asks one for its profiles and stream URIs (``onvif-zeep-async``).
The simulated camera that answers both, for tests run inside a private network namespace, is
test equipment: ``tests/plugins/onvif_simulator.py``, outside the shipped package.
"""
