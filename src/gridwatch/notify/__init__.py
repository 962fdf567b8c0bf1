"""Getting alerts to people: Web Push to on-duty responders, signed webhooks, snapshots.

See :mod:`.notifier` for the service and :mod:`.webpush` for the push protocol.
"""
