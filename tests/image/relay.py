"""One guest connection to the update server, relayed: qemu's guestfwd starts this per connection
(``cmd:``) with the guest's side on stdin and stdout, and it joins them to ``HOST PORT`` on loopback.

qemu's other guestfwd form (``-tcp:HOST:PORT``) opens one connection when qemu starts and gives every
guest connection that same socket: the second request of a guest would never be answered.
"""

from __future__ import annotations

import os
import socket
import sys
import threading


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    upstream = socket.create_connection((host, port), timeout=30)
    upstream.settimeout(None)

    def guest_to_host() -> None:
        while data := os.read(0, 65536):
            upstream.sendall(data)
        upstream.shutdown(socket.SHUT_WR)

    threading.Thread(target=guest_to_host, daemon=True).start()
    while data := upstream.recv(65536):
        os.write(1, data)


if __name__ == "__main__":
    main()
