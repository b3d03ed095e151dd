"""The API's namespaces, one module each; importing this package registers their methods."""

from . import acl, group, server, session, system, token, user, vm, xo

__all__ = ["acl", "group", "server", "session", "system", "token", "user", "vm", "xo"]
