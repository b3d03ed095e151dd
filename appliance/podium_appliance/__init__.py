"""Podium appliance: what runs only on the appliance, in three rooms over a shared floor.

- :mod:`.setup`: first boot and the setup wizard, until the appliance is set up (and the boot's checks after).
- :mod:`.box`: the box's own configuration and services: network, host, TLS, nginx, XenStore, the server.
- :mod:`.update`: the signed, atomic, in-place updater.

The floor, which every room imports and which imports no room: :mod:`.errors` (the one exception a person
reads) and :mod:`.layout` (where everything is, and the appliance's settings). ``setup`` uses ``box`` (and
the updater's settings, :mod:`.update.config`); ``update`` uses ``box``; ``box`` uses neither.
:mod:`.__main__` is the ``podium-appliance`` command over all three.
"""
