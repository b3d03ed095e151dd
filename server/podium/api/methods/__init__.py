"""The API's namespaces, one module each; importing this package registers their methods."""

from . import server, session, system, vm, xo

__all__ = ["server", "session", "system", "vm", "xo"]
