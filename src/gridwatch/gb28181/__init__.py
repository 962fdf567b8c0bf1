"""GB/T 28181 cascade: gridwatch as a lower platform of a city video platform (issue 17).

The protocol library is pure and has no I/O: ids and the id plan (:mod:`.ids`), SIP messages
and TCP framing (:mod:`.sip`), MD5 digest authentication (:mod:`.digest`), the MANSCDP XML
bodies (:mod:`.manscdp`), rule → alarm mapping (:mod:`.alarm_map`) and the ``gb28181:`` config
section (:mod:`.settings`). The running service (transport, registration, the alert consumer)
builds on them.
"""
