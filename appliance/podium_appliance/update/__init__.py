"""The updater: signed releases installed in place, atomically, with a way back.

What can be trusted: Ed25519 keys and the keyring (:mod:`.signing`), bundles (:mod:`.bundle`, their tar
read by :mod:`.ustar`), channel indexes (:mod:`.channel`, fetched by :mod:`.channel_client`). The appliance
trusts the keys shipped in its image and the keys those keys endorse (rotation); everything it installs was
signed by one of them, and every refusal is an :class:`~.signing.UpdateRefused` whose message says what is
wrong with the file and what to do.

What it does: :mod:`.updater` is what the service (:mod:`.service`) and the command (:mod:`.cli`) call.
Each operation runs alone and journaled (:mod:`.journal`) on one appliance (:mod:`.context`): the way
forward (:mod:`.installer`, with the data's backup in :mod:`.backup` and :mod:`.pgdump`, the health check in
:mod:`.health`), the way back (:mod:`.rollback`), and after a kill, the end of the story (:mod:`.recovery`).
What is installed and what happened: :mod:`.releases`; the settings: :mod:`.config`.
"""
