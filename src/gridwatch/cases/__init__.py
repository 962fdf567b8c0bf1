"""Cases: every alert opens one; people acknowledge, dispatch, arrive and resolve it.

The lifecycle (:mod:`.model`) is pure; :mod:`.service` records it on JetStream and escalates
cases whose deadlines pass.
"""
