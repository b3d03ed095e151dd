"""The updater's signed formats: Ed25519 keys and the keyring (``signing``), bundles (``bundle``), channel
indexes (``channel``).

Nothing here installs anything: these modules only say whether a file can be trusted, and why not. The
appliance trusts the keys shipped in its image and the keys those keys endorse (rotation); everything it
installs was signed by one of them, and every refusal is an :class:`~.signing.UpdateRefused` whose message
says what is wrong with the file and what to do.
"""
